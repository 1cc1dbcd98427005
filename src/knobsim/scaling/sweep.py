"""Scaling sweeps: sizes x seeds, resumable, shardable, one results table.

    sweep_points(...)          -> [Point]     the runs of a sweep (size x tokens x seed)
    run_sweep(points, settings, out)          trains what is not finished, writes the table
    build_table(out) / write_table(out)       results.csv, rebuilt from the run directories

A sweep directory:

    DIR/
      sweep.json        the latest invocation's settings and points (informational)
      results.csv       one row per finished run (schema: RESULT_COLUMNS), rebuilt from runs/
      runs/<name>/      one run directory per (size, tokens, seed): config.json, metrics.jsonl,
                        summary.json, params.npz (knobsim.io.rundir) and point.json (this module)
      lr_tune/<name>/   with tune_lr: the short runs of the learning-rate grid
      lr_tune.csv       one row per tuning run

Resuming: a run is finished when its directory holds summary.json; a rerun skips it; a
killed run that trained alone continues from its last checkpoint (train --resume); any
other leftover without summary.json (a killed vmapped group) is removed and trained again. The table is always
rebuilt from the run directories and written atomically (temporary file + rename) after
each trained group, so a kill never loses a finished row, and concurrent shards writing
the same DIR each write a complete table (a plain rerun at the end writes the final one).

Run names carry a hash of everything requested of the run (size, tokens, seed, lr, batch,
seq, pool, language), so a rerun with other settings trains new runs beside the old ones
instead of mistaking them for finished; every finished run in DIR/runs is in the table.

Seeds of one size train together in one vmapped program (train.train_seeds) where the
measurement behind VMAP_BREAK_EVEN says that finishes first, one after another otherwise.

On every core (issue 23): a point at most CORES_BREAK_EVEN's size trains on one XLA:CPU
thread, in a worker process, ``jobs`` (default: the cores) at a time;
larger points train here on all cores, one at a time (knobsim.scaling.workers). The thread
count changes a run's bits, so it depends on the point's size and the machine's cores only,
never on what runs beside it or on ``jobs``, and each run's point.json (and results.csv's
``threads`` column) records it; a killed run resumes on the threads it started on. A
finished run is never trained again, so a sweep from before issue 23 (all cores, no
``threads`` recorded) continued now mixes runs of both kinds: same point, other bits.
``threads="all"`` trains every point as before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from knobsim.config import format_count
from knobsim.core import runtime
from knobsim.errors import KnobsimError
from knobsim.io import rundir as record
from knobsim.scaling.points import (
    CORES_BREAK_EVEN, LR_GRID, RESULT_COLUMNS, TUNE_COLUMNS, TUNE_FRACTION, TUNE_MIN_STEPS,
    VMAP_BREAK_EVEN, Point, Settings, _count, _finished, _fresh_run_dir, _plan, _request,
    _resumable, load_cores_bench, one_thread_up_to, order, parse_shard, parse_sizes, plan_all,
    point_threads, recorded_threads, run_name, shard_points, sweep_points, validate_settings,
)
from knobsim.scaling.progress import Reporter, RichReporter
from knobsim.scaling.results import (
    _cell, _row, _write_csv_atomic, build_table, fit_hint, read_rows, write_table,
)
from knobsim.scaling.workers import Pool, make_unit

# What this module is the home of, and what it re-exports from its parts (points, results,
# progress) so that ``from knobsim.scaling import sweep as S`` is the sweep's whole API.
__all__ = [
    "SweepResult", "run_sweep", "break_even_tokens", "load_break_even",
    "LR_GRID", "RESULT_COLUMNS", "TUNE_COLUMNS", "TUNE_FRACTION", "TUNE_MIN_STEPS",
    "VMAP_BREAK_EVEN", "CORES_BREAK_EVEN", "Point", "Settings", "order", "parse_shard",
    "parse_sizes", "plan_all", "run_name", "shard_points", "sweep_points", "validate_settings",
    "one_thread_up_to", "load_cores_bench", "point_threads",
    "Reporter", "RichReporter", "build_table", "fit_hint", "read_rows", "write_table",
]
# Private helpers shared with the other sweep backends.
_SHARED = (_count, _finished, _fresh_run_dir, _plan, _request, _resumable, _cell, _row,
           _write_csv_atomic)


def __getattr__(name: str):
    # The old name of read_rows: knobsim has one read_table (knobsim.scaling.table: the loss
    # table of the fits), so the rows of results.csv are read_rows now.
    if name == "read_table":
        import warnings

        warnings.warn("knobsim.scaling.sweep.read_table is now read_rows (knobsim.read_table "
                      "reads a loss table for the fits)", DeprecationWarning, stacklevel=2)
        return read_rows
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- running -----------------------------------------------------------------------------


@dataclasses.dataclass
class SweepResult:
    table: Path
    trained: int  # runs trained by this call
    skipped: int  # runs found finished
    rows: list[dict]  # the whole table after this call
    tuned: dict  # budget -> lr chosen by tuning (empty without tune_lr)


def break_even_tokens(n_params: int, table: Sequence[Sequence[float]] = VMAP_BREAK_EVEN) -> float:
    """D*(N): tokens per seed up to which vmapped seeds finish first; log-log interpolation
    of the measured table, held constant beyond its ends."""
    pts = sorted((float(n), float(d)) for n, d in table)
    xs = np.log([n for n, _ in pts])
    ys = np.array([d for _, d in pts])
    if np.all(np.isinf(ys)):
        return math.inf
    big = 1e30  # inf (vmapped faster even in steady state) interpolates as "very large"
    ly = np.log(np.clip(np.where(np.isinf(ys), big, ys), 1.0, big))
    return float(np.exp(np.interp(math.log(n_params), xs, ly)))


def load_break_even(path: str | Path) -> tuple[tuple[float, float], ...]:
    try:
        data = json.loads(Path(path).read_text())
        return tuple((float(n), float(d)) for n, d in data["break_even"])
    except (OSError, ValueError, KeyError, TypeError):
        raise KnobsimError(f"--vmap-bench {path} is not a bench_seeds.py result; "
                           "run python benchmarks/bench_seeds.py --out FILE") from None


def _vmap_ok(s: Settings, n_params: int, tokens: int, p: Point, n_seeds: int) -> bool:
    if n_seeds < 2 or p.pool_tokens:  # train.train_seeds keeps one pool: no vmap with pools
        return False
    if s.vmap == "always":
        return True
    if s.vmap == "never":
        return False
    table = load_break_even(s.vmap_bench) if s.vmap_bench else VMAP_BREAK_EVEN
    return tokens <= break_even_tokens(n_params, table)


def _tune_tokens(cfg, s: Settings) -> int:
    per_step = s.batch * s.seq
    return min(cfg.train.tokens, max(TUNE_MIN_STEPS * per_step,
                                     int(cfg.train.tokens * s.tune_fraction)))


def _tuning_plan(points: Sequence[Point], s: Settings, first_seed: int) -> dict:
    """{(budget, tokens, pool): [TuneRun]}: the lr grid of every size that needs one, run
    with the sweep's first seed (the same whichever shard asks)."""
    from knobsim.core.optim import default_lr

    plans: dict = {}
    for p in order(points):
        key = _size_key(p)
        if p.lr is not None or key in plans:
            continue
        base = _plan(p, s, None)
        rule = default_lr(s.arch, base.model.n_params_total)
        tp = dataclasses.replace(p, tokens=_tune_tokens(base, s), seed=first_seed, tag="")
        plans[key] = [TuneRun(run_name(tp, s, rule * f, prefix="tune-"), tp, _plan(tp, s, rule * f), f)
                      for f in s.lr_grid]
    return plans


@dataclasses.dataclass(frozen=True)
class TuneRun:
    name: str
    point: Point
    cfg: object  # RunConfig
    factor: float


def _size_key(p: Point) -> tuple:
    return (p.budget, p.tokens, p.pool_tokens)


def _resolve_tuning(out: Path, plans: dict, s: Settings, rep: Reporter | None = None) -> dict:
    """{size key: best lr} for every grid that is complete; rewrites lr_tune.csv. With a
    reporter, notes the sizes whose best lr lies on the edge of the grid."""
    tuned, rows = {}, []
    for key, grid in plans.items():
        res = []
        for t in grid:
            path = out / "lr_tune" / t.name
            if _finished(path):
                sm = record.read_json(path / "summary.json")
                loss = sm["final_eval_loss"]
                res.append((loss if loss is not None else math.inf, t, path, sm))
        if len(res) == len(grid):
            best = min(res, key=lambda r: r[0])[1]
            tuned[key] = best.cfg.optim.lr
            on_edge = best.factor in (min(s.lr_grid), max(s.lr_grid)) and len(s.lr_grid) > 1
            if rep is not None and on_edge:
                rep.note(f"lr tuning at {format_count(key[0])} knobs: the best lr "
                         f"{tuned[key]:.3g} is at the edge of the grid; widen --lr-grid")
        for _, t, path, sm in res:
            rows.append({"budget": key[0], "n_params_total": sm["n_params_total"],
                         "tokens": sm["tokens"], "lr": t.cfg.optim.lr, "factor": t.factor,
                         "final_eval_loss": sm["final_eval_loss"],
                         "best": int(tuned.get(key) == t.cfg.optim.lr), "run_dir": str(path)})
    if rows:
        _write_csv_atomic(out / "lr_tune.csv", rows, TUNE_COLUMNS)
    return tuned

def _check_points(points: Sequence[Point]) -> list[Point]:
    points = order(points)
    if not points:
        raise KnobsimError("the sweep has no points; give --params and --seeds")
    ids = [dataclasses.astuple(p) for p in points]
    if len(set(ids)) != len(ids):
        raise KnobsimError("the sweep lists the same run twice; give distinct sizes and seeds")
    return points


def _write_manifest(out: Path, settings: Settings, shard, tune_only: bool, points) -> None:
    out.mkdir(parents=True, exist_ok=True)
    record.write_json_atomic(out / "sweep.json", {
        "settings": dataclasses.asdict(settings), "shard": list(shard), "tune_only": tune_only,
        "points": [dataclasses.asdict(p) for p in points],
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    })


def _grid_todo(out: Path, plans: dict, shard, tune_only: bool):
    """(this shard's lr-grid runs, those not finished); shards never tune in a main sweep."""
    i_shard, n_shard = shard
    grid_runs = [t for grid in plans.values() for t in grid]
    if tune_only:
        grid_runs = [t for j, t in enumerate(grid_runs) if j % n_shard == i_shard]
    tune_todo = [t for t in grid_runs if not _finished(out / "lr_tune" / t.name)]
    if tune_todo and n_shard > 1 and not tune_only:
        raise KnobsimError(
            f"lr tuning for --params {format_count(tune_todo[0].point.budget)} is not finished in "
            f"{out / 'lr_tune'}; run the same command with --tune-only first (it can be sharded "
            "too), then the shards"
        )
    return grid_runs, tune_todo


@dataclasses.dataclass
class _LRs:
    """Where each point's learning rate comes from: given, tuned (once the grid is done), the rule."""

    settings: Settings
    tuned: dict

    def __call__(self, p: Point) -> tuple[float | None, str]:
        if p.lr is not None:
            return p.lr, "given"
        if self.settings.tune_lr:
            return self.tuned.get(_size_key(p)), "tuned"
        return None, "rule"


def _main_todo(out: Path, mine, settings: Settings, lr_for: _LRs) -> tuple[list[Point], int]:
    """Main runs still to train, and how many are finished. A run whose size is still to be
    tuned cannot be finished yet."""
    todo, done = [], 0
    for p in mine:
        lr, src = lr_for(p)
        if not (src == "tuned" and lr is None) and _finished(out / "runs" / run_name(p, settings, lr)):
            done += 1
        else:
            todo.append(p)
    return todo, done


@dataclasses.dataclass
class _Todo:
    """What a sweep call has left to train (shared by both backends)."""

    tune: list  # TuneRun: the lr grid's unfinished runs
    main: list  # Point: the unfinished main runs (those whose lr is known yet)
    lr_for: _LRs
    done: int  # runs found finished


def _todo(out: Path, plans: dict, shard, tune_only: bool, mine, settings: Settings,
          rep: Reporter) -> _Todo:
    """The unfinished runs of this call; starts the progress bar over all of them."""
    grid_runs, tune_todo = _grid_todo(out, plans, shard, tune_only)
    lr_for = _LRs(settings, _resolve_tuning(out, plans, settings, None if tune_todo else rep))
    main_todo, n_main_done = _main_todo(out, [] if tune_only else mine, settings, lr_for)
    n_done = len(grid_runs) - len(tune_todo) + n_main_done
    total = (sum(t.cfg.train.tokens for t in tune_todo)
             + sum(_plan(p, settings, p.lr).train.tokens for p in main_todo))
    rep.start(total, len(tune_todo) + len(main_todo), n_done)
    return _Todo(tune_todo, main_todo, lr_for, n_done)


def _threads(path: Path, n_params: int, s: Settings, cores: int) -> int:
    """A single run's XLA threads: the rule for a new run; a killed run that will resume
    keeps the threads it started on (point.json), so that it continues with the same bits."""
    if _resumable(path):
        return recorded_threads(path, default=runtime.xla_threads())
    return point_threads(n_params, s, cores)


def _train_tuning(out, tune_todo, plans, settings, lang, lr_for: _LRs, pool: Pool, rep) -> int:
    cores = runtime.cores()
    units = []
    for t in tune_todo:
        path = out / "lr_tune" / t.name
        units.append(make_unit(
            f"tune N={format_count(t.cfg.model.n_params_total)} lr={t.cfg.optim.lr:.3g}",
            [t.cfg], [path], [{**dataclasses.asdict(t.point), "lr_source": "tune",
                               "lr_factor": t.factor}],
            False, _threads(path, t.cfg.model.n_params_total, settings, cores)))
    left = [len(units)]

    def after(unit):
        left[0] -= 1
        lr_for.tuned = _resolve_tuning(out, plans, settings, rep if not left[0] else None)

    pool.run(units, rep, lang, after)
    return len(units)


def _train_main(out, main_todo, settings, lang, lr_for: _LRs, pool: Pool, rep) -> int:
    """Seeds of one size train together (vmapped) where VMAP_BREAK_EVEN says so, else each
    alone; the table is rewritten after every finished unit, so a kill never loses a row."""
    cores = runtime.cores()
    groups: dict = {}
    for p in main_todo:
        lr, src = lr_for(p)
        groups.setdefault((_size_key(p), lr, p.tag), []).append((p, lr, src))
    units = []
    for grp in groups.values():
        p0, lr, _ = grp[0]
        cfgs = [_plan(p, settings, lr) for p, _, _ in grp]
        n = cfgs[0].model.n_params_total
        paths = [out / "runs" / run_name(p, settings, lr) for p, _, _ in grp]
        metas = [{**dataclasses.asdict(p), "lr_source": src} for p, _, src in grp]
        label = f"N={format_count(n)} D={format_count(cfgs[0].train.tokens)}"
        if _vmap_ok(settings, n, cfgs[0].train.tokens, p0, len(grp)):
            units.append(make_unit(f"{label}, {len(grp)} seeds vmapped", cfgs, paths, metas,
                                   True, point_threads(n, settings, cores)))
            continue
        for cfg, path, meta in zip(cfgs, paths, metas):
            units.append(make_unit(f"{label} seed {meta['seed']}", [cfg], [path], [meta], False,
                                   _threads(path, n, settings, cores)))
    pool.run(units, rep, lang, lambda unit: write_table(out))
    return sum(len(u.paths) for u in units)


def run_sweep(
    points: Sequence[Point],
    settings: Settings,
    out: Path,
    *,
    shard: tuple[int, int] = (0, 1),
    reporter: Reporter | None = None,
    tune_only: bool = False,
) -> SweepResult:
    """Train every point of this shard that is not finished; return the table.

    Everything is planned (and so validated) before anything is written. With
    ``settings.tune_lr``, points without an lr first get the best of a short lr grid at
    their size (tuning runs are resumable too). Shards never tune: with a shard, the grid
    must have been run first (``tune_only``, which can itself be sharded: its points are
    then the grid's runs).
    """
    from knobsim.data.language import build_language

    validate_settings(settings)
    out = Path(out)
    rep = reporter or Reporter()
    points = _check_points(points)
    mine = shard_points(points, shard)
    plan_all(points, settings)  # bad input fails before anything is written
    first_seed = min(p.seed for p in points)
    plans = (_tuning_plan(points if tune_only else mine, settings, first_seed)
             if settings.tune_lr else {})
    lang = build_language(settings.language)
    # One process per sweep folder (per shard: shards share a folder by design).
    part = "" if shard == (0, 1) else f"-shard-{shard[0]}-of-{shard[1]}"
    with record.exclusive(out, f"another sweep{part.replace('-', ' ')}", f".lock{part}"):
        _write_manifest(out, settings, shard, tune_only, points)
        todo = _todo(out, plans, shard, tune_only, mine, settings, rep)
        try:
            with Pool(settings.jobs) as pool:
                trained = _train_tuning(out, todo.tune, plans, settings, lang, todo.lr_for, pool, rep)
                trained += _train_main(out, todo.main, settings, lang, todo.lr_for, pool, rep)
        except BaseException:
            with contextlib.suppress(Exception):  # runs finished beside the one that stopped
                write_table(out)
            raise
        finally:
            rep.stop()
        rows = build_table(out)
        return SweepResult(write_table(out), trained, todo.done, rows, dict(todo.lr_for.tuned))
