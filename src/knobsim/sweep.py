"""Scaling sweeps: sizes x seeds, resumable, shardable, one results table.

    sweep_points(...)          -> [Point]     the runs of a sweep (size x tokens x seed)
    run_sweep(points, settings, out)          trains what is not finished, writes the table
    build_table(out) / write_table(out)       results.csv, rebuilt from the run directories

A sweep directory:

    DIR/
      sweep.json        the latest invocation's settings and points (informational)
      results.csv       one row per finished run (schema: RESULT_COLUMNS), rebuilt from runs/
      runs/<name>/      one run directory per (size, tokens, seed): config.json, metrics.jsonl,
                        summary.json, params.npz (knobsim.record) and point.json (this module)
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
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import shutil
import socket
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from knobsim import record
from knobsim.config import LanguageConfig, format_count, parse_count
from knobsim.errors import KnobsimError

# When to train a size's seeds together (one vmapped program) rather than one after
# another. Measured, not assumed: benchmarks/bench_seeds.py times S = 3 seeds at batch 32 x
# seq 128 each both ways, steady state and end to end, at 1e3..1e6 knobs, and writes
# benchmarks/results/bench_seeds.json. On this 2-core CPU (shared, load average ~4 while
# measuring) steady-state throughput is slightly worse vmapped (0.77x, 0.98x, 0.86x, 0.84x
# at 1e3, 1e4, 1e5, 1e6), but every train() call pays 4-30 s of fixed work (building and
# compiling its programs, the first evaluation), which S sequential seeds pay S times and
# vmapped seeds once. The break-even tokens per seed,
#     D*(N) = (S o_seq - o_vmap) / (S / r_vmap - S / r_seq),
# are copied here as (n_params, D*) pairs. A sweep vmaps a size when its tokens per seed
# are at most D*(N), interpolated in log-log (held constant beyond the ends): on this
# machine, always below ~4M tokens per seed, never for 1e6 knobs beyond ~2M tokens.
# Rerun the benchmark on another machine or backend and pass its JSON
# (Settings.vmap_bench / --vmap-bench) to use its numbers instead.
VMAP_BREAK_EVEN: tuple[tuple[int, float], ...] = (
    (1_002, 5.7e7), (9_962, 4.2e7), (99_935, 4.4e6), (1_000_212, 1.8e6),
)

# Learning-rate tuning (tune_lr): multiples of the default rule (optim.default_lr) tried
# at each size, on a short budget of TUNE_FRACTION of the run's tokens (at least
# TUNE_MIN_STEPS steps), seed = the sweep's first seed. Factors of 2 either side of the
# rule span its own uncertainty (it was fitted to a 3-point grid at 3 sizes).
LR_GRID = (0.25, 0.5, 1.0, 2.0, 4.0)
TUNE_FRACTION = 0.25
TUNE_MIN_STEPS = 50

# Columns of results.csv, in order. The first block is the documented schema; the rest
# are context that makes a row self-describing.
RESULT_COLUMNS = (
    "arch", "shape", "n_params_total", "n_params_nonembedding", "tokens", "compute",
    "final_eval_loss", "entropy_floor", "lr", "seed", "wall_s", "run_dir",
    # context
    "budget", "lr_source", "tag", "steps", "batch", "seq", "pool_tokens", "epochs", "zipf",
    "final_train_loss", "tokens_per_s", "n_seeds_together",
)
TUNE_COLUMNS = ("budget", "n_params_total", "tokens", "lr", "factor", "final_eval_loss",
                "best", "run_dir")


# -- parsing what users type -------------------------------------------------------------


def _count(text: str, what: str) -> int:
    try:
        return parse_count(text, what=what)
    except KnobsimError as e:
        msg = str(e)
        raise KnobsimError(msg if msg.startswith(what) else f"{what}: {msg}") from None


def parse_sizes(text: str, what: str = "--params") -> list[int]:
    """'1e3:1e6:8' -> 8 log-spaced budgets from 1e3 to 1e6; '1e3,1e4,1e5' -> that list."""
    text = str(text).strip()
    if not text:
        raise KnobsimError(f"{what} is empty; give a range like 1e3:1e6:8 or a list like 1e3,1e4")
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise KnobsimError(
                f"{what} {text!r} is not a range: write LOW:HIGH:COUNT, e.g. 1e3:1e6:8"
            )
        lo = _count(parts[0], f"{what} low end")
        hi = _count(parts[1], f"{what} high end")
        try:
            k = int(parts[2])
        except ValueError:
            raise KnobsimError(
                f"{what} {text!r}: the count {parts[2]!r} must be a whole number, e.g. 1e3:1e6:8"
            ) from None
        if k < 1:
            raise KnobsimError(f"{what} {text!r}: the count must be at least 1, e.g. 1e3:1e6:8")
        if hi < lo:
            raise KnobsimError(f"{what} {text!r}: the high end is below the low end; write LOW:HIGH:COUNT")
        if k == 1 and hi != lo:
            raise KnobsimError(f"{what} {text!r}: one size cannot span {parts[0]}..{parts[1]}; "
                               "ask for 2 or more, or give a single size")
        sizes = [round(v) for v in np.geomspace(lo, hi, k)]
    else:
        sizes = [_count(p, what) for p in text.split(",") if p.strip()]
        if not sizes:
            raise KnobsimError(f"{what} {text!r} holds no sizes; e.g. 1e3,1e4,1e5")
    out = sorted(set(sizes))
    if len(out) < len(sizes) and ":" in text:
        raise KnobsimError(
            f"{what} {text!r} gives repeated sizes after rounding; ask for fewer points"
        )
    return out


def parse_shard(text: str | None) -> tuple[int, int]:
    """'2/8' -> (2, 8): this process runs points i, i+n, i+2n... (0 <= i < n)."""
    if text is None or text == "":
        return 0, 1
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m:
        raise KnobsimError(
            f"--shard {text!r} is not I/N; write e.g. --shard 0/4 (shards 0/4 .. 3/4)"
        )
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or i >= n:
        raise KnobsimError(
            f"--shard {text}: need 0 <= I < N, e.g. 0/{max(n, 1)} .. {max(n, 1) - 1}/{max(n, 1)} "
            "(with SLURM: --array=0-<N-1> and --shard $SLURM_ARRAY_TASK_ID/<N>)"
        )
    return i, n


# -- what to train -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Point:
    """One run of a sweep."""

    budget: int  # requested knobs (the shape is fitted to it)
    tokens: int | None  # training tokens; None: train's default rule
    seed: int
    pool_tokens: int = 0  # finite-data mode: a pool of this many tokens, repeated
    lr: float | None = None  # None: default rule, or tuned with tune_lr
    tag: str = ""  # a free label carried into the table (e.g. "C=1e13")


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every run of a sweep shares."""

    arch: str = "transformer"
    batch: int = 16
    seq: int = 64
    language: LanguageConfig = dataclasses.field(default_factory=LanguageConfig)
    tune_lr: bool = False
    lr_grid: tuple[float, ...] = LR_GRID  # multiples of the default rule
    tune_fraction: float = TUNE_FRACTION
    vmap: str = "auto"  # "auto" (VMAP_BREAK_EVEN), "always", "never"
    vmap_bench: str | None = None  # a bench_seeds.py JSON to take the break-even from
    evals: int | None = None  # evaluations per run (None: train's default, ~10); at most
    #                           one per chunk (train runs ~40 chunks). Not part of a run's
    #                           identity: evaluating never changes what is trained.
    check_memory: bool = True


def sweep_points(
    budgets: Sequence[int],
    seeds: Sequence[int] | int = 3,
    *,
    arch: str = "transformer",
    tokens: int | None = None,
    tokens_per_param: float | None = None,
    pool_tokens: int = 0,
    lr: float | None = None,
    batch: int = 16,
    seq: int = 64,
) -> list[Point]:
    """Sizes x seeds. Tokens per run: ``tokens`` fixed, or ``tokens_per_param`` x the exact
    total count of each size's shape, or (neither) train's default rule."""
    from knobsim.data.language import VOCAB
    from knobsim.models import sizing

    if tokens is not None and tokens_per_param is not None:
        raise KnobsimError("give --tokens or --tokens-per-param, not both")
    if tokens_per_param is not None and not (math.isfinite(tokens_per_param) and tokens_per_param > 0):
        raise KnobsimError(f"--tokens-per-param must be a positive number, got {tokens_per_param}")
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise KnobsimError("--seeds must be at least 1")
    if len(set(seeds)) != len(seeds):
        raise KnobsimError("seeds repeat; give distinct seeds")
    points = []
    for b in sorted(set(budgets)):
        d = tokens
        if tokens_per_param is not None:
            n = sizing.count_params(arch, sizing.shape_for_budget(arch, b, VOCAB, seq)).total
            d = max(batch * seq, round(tokens_per_param * n))
        for s in seeds:
            points.append(Point(budget=b, tokens=d, seed=s, pool_tokens=pool_tokens, lr=lr))
    return points


def shard_points(points: Sequence[Point], shard: tuple[int, int]) -> list[Point]:
    """Every n-th point, starting at i, in the sweep's order (sizes up, then seeds)."""
    i, n = shard
    return [p for j, p in enumerate(order(points)) if j % n == i]


def order(points: Sequence[Point]) -> list[Point]:
    return sorted(points, key=lambda p: (p.budget, p.tokens or 0, p.pool_tokens, p.lr or 0.0,
                                         p.tag, p.seed))


def _request(p: Point, s: Settings, lr: float | None) -> dict:
    """Everything asked of one run: the input of its name's hash (seed excluded)."""
    return {"arch": s.arch, "budget": p.budget, "tokens": p.tokens, "pool_tokens": p.pool_tokens,
            "lr": lr, "batch": s.batch, "seq": s.seq,
            "language": dataclasses.asdict(s.language)}


def run_name(p: Point, s: Settings, lr: float | None, prefix: str = "") -> str:
    h = hashlib.sha1(json.dumps(_request(p, s, lr), sort_keys=True).encode()).hexdigest()[:8]
    d = "default" if p.tokens is None else format_count(p.tokens)
    pool = f"-pool{format_count(p.pool_tokens)}" if p.pool_tokens else ""
    return f"{prefix}{s.arch}-N{format_count(p.budget)}-D{d}{pool}-s{p.seed}-{h}".replace(".", "p")


def _plan(p: Point, s: Settings, lr: float | None):
    from knobsim.train import plan_run

    kw = dict(params=p.budget, arch=s.arch, tokens=p.tokens, batch=s.batch, seq=s.seq, lr=lr,
              seed=p.seed, pool_tokens=p.pool_tokens, language=s.language,
              check_memory=s.check_memory)
    cfg = plan_run(**kw)
    if s.evals:
        cfg = plan_run(**kw, eval_every=max(1, cfg.train.steps // s.evals))
    return cfg


def plan_all(points: Sequence[Point], s: Settings) -> None:
    """Plan every run (validates sizes, tokens, memory) without training anything."""
    validate_settings(s)
    for p in points:
        _plan(p, s, p.lr)


def _finished(path: Path) -> bool:
    return (path / "summary.json").is_file()


def _resumable(path: Path) -> bool:
    """A killed single-seed run that left a checkpoint (vmapped groups keep none)."""
    ck = path / "checkpoints"
    return ((path / "config.json").is_file() and (path / "metrics.jsonl").is_file()
            and ck.is_dir() and any(p.name.isdigit() for p in ck.iterdir()))


def _fresh_run_dir(path: Path, allow_resume: bool = False) -> tuple[record.RunDir, bool]:
    """A run directory for a run that is about to (re)start, and whether to resume it: a
    killed run with a checkpoint is resumed (when ``allow_resume``), any other leftover
    without summary.json is removed first."""
    if allow_resume and path.exists() and _resumable(path):
        return record.RunDir(path), True
    if path.exists():
        shutil.rmtree(path)
    return record.RunDir.create(path), False


# -- the results table -------------------------------------------------------------------


def _row(run: Path) -> dict | None:
    s_path = run / "summary.json"
    if not s_path.is_file():
        return None
    s = record.read_json(s_path)
    c = record.read_json(run / "config.json")
    pt = record.read_json(run / "point.json") if (run / "point.json").is_file() else {}
    tr = c["train"]
    n, d = s["n_params_total"], s["tokens"]
    return {
        "arch": s["arch"],
        "shape": json.dumps(s["shape"], sort_keys=True, separators=(",", ":")),
        "n_params_total": n,
        "n_params_nonembedding": s["n_params_nonembedding"],
        "tokens": d,
        "compute": 6.0 * n * d,
        "final_eval_loss": s["final_eval_loss"],
        "entropy_floor": s["entropy_floor"],
        "lr": s["lr"],
        "seed": s["seed"],
        "wall_s": s["wall_s"],
        "run_dir": str(run),
        "budget": c["model"]["budget"],
        "lr_source": pt.get("lr_source", ""),
        "tag": pt.get("tag", ""),
        "steps": s["steps"],
        "batch": tr["batch"],
        "seq": tr["seq"],
        "pool_tokens": tr.get("pool_tokens", 0),
        "epochs": s.get("epochs"),
        "zipf": c["language"]["zipf"],
        "final_train_loss": s["final_train_loss"],
        "tokens_per_s": s["tokens_per_s"],
        "n_seeds_together": s.get("n_seeds_together", 1),
    }


def build_table(out: Path, sub: str = "runs") -> list[dict]:
    """One row per finished run under out/sub, sorted by (arch, N, D, pool, seed)."""
    base = Path(out) / sub
    rows = [r for r in (_row(p) for p in sorted(base.iterdir()) if p.is_dir())
            if r is not None] if base.is_dir() else []
    return sorted(rows, key=lambda r: (r["arch"], r["n_params_total"], r["tokens"],
                                       r["pool_tokens"], r["lr"], r["tag"], r["seed"]))


def _write_csv_atomic(path: Path, rows: list[dict], columns: Sequence[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(r.get(k)) for k in columns})
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return v


def write_table(out: Path) -> Path:
    """Rebuild out/results.csv from out/runs/*, atomically."""
    path = Path(out) / "results.csv"
    _write_csv_atomic(path, build_table(out), RESULT_COLUMNS)
    return path


def read_table(path: Path) -> list[dict]:
    """results.csv back as dicts with numbers parsed (shape stays a JSON string)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    ints = {"n_params_total", "n_params_nonembedding", "tokens", "seed", "budget", "steps",
            "batch", "seq", "pool_tokens", "n_seeds_together"}
    floats = {"compute", "final_eval_loss", "entropy_floor", "lr", "wall_s", "epochs", "zipf",
              "final_train_loss", "tokens_per_s"}
    for r in rows:
        for k in ints & r.keys():
            r[k] = int(r[k]) if r[k] != "" else None
        for k in floats & r.keys():
            r[k] = float(r[k]) if r[k] != "" else None
    return rows


# -- progress ----------------------------------------------------------------------------


class Reporter:
    """What run_sweep tells its caller; the default says nothing."""

    def start(self, total_tokens: int, n_runs: int, n_done: int) -> None: ...
    def group(self, text: str) -> None: ...
    def advance(self, tokens: int, loss: float | None) -> None: ...
    def finished_run(self, row: dict) -> None: ...
    def note(self, text: str) -> None: ...
    def stop(self) -> None: ...


class RichReporter(Reporter):
    """One rich progress bar over the whole sweep: tokens trained of tokens to train."""

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(highlight=False)
        self.progress = None

    def start(self, total_tokens, n_runs, n_done):
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.runs_total, self.runs_done = n_runs, 0
        if n_done:
            self.console.print(f"{n_done} run(s) already finished: skipped")
        if not n_runs:
            return
        self.progress = Progress(
            TextColumn("[bold]sweep"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("runs {task.fields[runs]}"), TextColumn("{task.fields[what]}"),
            TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("sweep", total=max(1, total_tokens), what="",
                                           loss="-", runs=f"0/{n_runs}")

    def group(self, text):
        if self.progress is not None:
            self.progress.update(self.task, what=text)

    def advance(self, tokens, loss):
        self.progress.update(self.task, advance=tokens,
                             loss="-" if loss is None else f"{loss:.3f}")

    def finished_run(self, row):
        self.runs_done += 1
        self.progress.update(self.task, runs=f"{self.runs_done}/{self.runs_total}")

    def note(self, text):
        (self.progress.console if self.progress else self.console).print(text)

    def stop(self):
        if self.progress is not None:
            self.progress.stop()


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


def validate_settings(s: Settings) -> None:
    from knobsim.models import sizing

    sizing.family(s.arch)
    if s.vmap not in ("auto", "always", "never"):
        raise KnobsimError(f"--vmap must be auto, always or never, not {s.vmap!r}")
    if s.batch < 1 or s.seq < 2:
        raise KnobsimError(f"--batch must be >= 1 and --seq >= 2, got {s.batch}, {s.seq}")
    if not s.lr_grid or any(not (math.isfinite(f) and f > 0) for f in s.lr_grid):
        raise KnobsimError("--lr-grid must be positive multiples of the default lr, e.g. 0.5,1,2")
    if s.evals is not None and s.evals < 1:
        raise KnobsimError(f"evals must be at least 1, got {s.evals}")
    if not 0 < s.tune_fraction <= 1:
        raise KnobsimError(f"--tune-fraction must be in (0, 1], got {s.tune_fraction}")


def _tune_tokens(cfg, s: Settings) -> int:
    per_step = s.batch * s.seq
    return min(cfg.train.tokens, max(TUNE_MIN_STEPS * per_step,
                                     int(cfg.train.tokens * s.tune_fraction)))


def _tuning_plan(points: Sequence[Point], s: Settings, first_seed: int) -> dict:
    """{(budget, tokens, pool): [TuneRun]}: the lr grid of every size that needs one, run
    with the sweep's first seed (the same whichever shard asks)."""
    from knobsim.optim import default_lr

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
    points = order(points)
    if not points:
        raise KnobsimError("the sweep has no points; give --params and --seeds")
    ids = [dataclasses.astuple(p) for p in points]
    if len(set(ids)) != len(ids):
        raise KnobsimError("the sweep lists the same run twice; give distinct sizes and seeds")
    i_shard, n_shard = shard
    mine = shard_points(points, shard)

    plan_all(points, settings)  # bad input fails before anything is written
    first_seed = min(p.seed for p in points)
    plans = (_tuning_plan(points if tune_only else mine, settings, first_seed)
             if settings.tune_lr else {})
    lang = build_language(settings.language)

    out.mkdir(parents=True, exist_ok=True)
    record.write_json_atomic(out / "sweep.json", {
        "settings": dataclasses.asdict(settings), "shard": list(shard), "tune_only": tune_only,
        "points": [dataclasses.asdict(p) for p in points],
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    })

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
    tuned = _resolve_tuning(out, plans, settings, None if tune_todo else rep)

    def lr_for(p: Point) -> tuple[float | None, str]:
        if p.lr is not None:
            return p.lr, "given"
        if settings.tune_lr:
            return tuned.get(_size_key(p)), "tuned"
        return None, "rule"

    # Main runs to train. A run whose size is still to be tuned cannot be finished yet.
    main_todo, n_done = [], len(grid_runs) - len(tune_todo)
    for p in ([] if tune_only else mine):
        lr, src = lr_for(p)
        if not (src == "tuned" and lr is None) and _finished(out / "runs" / run_name(p, settings, lr)):
            n_done += 1
        else:
            main_todo.append(p)
    total = (sum(t.cfg.train.tokens for t in tune_todo)
             + sum(_plan(p, settings, p.lr).train.tokens for p in main_todo))

    trained = 0
    rep.start(total, len(tune_todo) + len(main_todo), n_done)
    try:
        for t in tune_todo:
            rep.group(f"tune N={format_count(t.cfg.model.n_params_total)} lr={t.cfg.optim.lr:.3g}")
            run, resume = _fresh_run_dir(out / "lr_tune" / t.name, allow_resume=True)
            record.write_json_atomic(run.path / "point.json", {
                **dataclasses.asdict(t.point), "lr_source": "tune", "lr_factor": t.factor})
            _train_group([t.cfg], [run], rep, lang, together=False, resumes=[resume])
            trained += 1
            last = t is tune_todo[-1]
            tuned = _resolve_tuning(out, plans, settings, rep if last else None)

        groups: dict = {}
        for p in main_todo:
            lr, src = lr_for(p)
            groups.setdefault((_size_key(p), lr, p.tag), []).append((p, lr, src))
        for grp in groups.values():
            p0, lr, _ = grp[0]
            cfgs = [_plan(p, settings, lr) for p, _, _ in grp]
            n = cfgs[0].model.n_params_total
            together = _vmap_ok(settings, n, cfgs[0].train.tokens, p0, len(grp))
            how = f", {len(grp)} seeds vmapped" if together else ""
            rep.group(f"N={format_count(n)} D={format_count(cfgs[0].train.tokens)}{how}")
            runs, resumes = [], []
            for p, _, src in grp:
                run, resume = _fresh_run_dir(out / "runs" / run_name(p, settings, lr),
                                             allow_resume=not together)
                record.write_json_atomic(run.path / "point.json",
                                         {**dataclasses.asdict(p), "lr_source": src})
                runs.append(run)
                resumes.append(resume)
            # The table is rewritten after every finished run (or vmapped group), so a
            # kill never loses a finished row.
            _train_group(cfgs, runs, rep, lang, together, after_each=lambda: write_table(out),
                         resumes=resumes)
            trained += len(grp)
    finally:
        rep.stop()
    rows = build_table(out)
    return SweepResult(write_table(out), trained, n_done, rows, dict(tuned))


def _train_group(cfgs, runs, rep: Reporter, lang, together: bool, after_each=None,
                 resumes=None) -> None:
    """Train runs of one size: all seeds in one vmapped program, or one after another
    (a killed one resumes from its checkpoint, bit for bit)."""
    from knobsim.train import train, train_seeds

    def progress(mult):
        last = [0]

        def on_chunk(r):
            rep.advance((r.tokens - last[0]) * mult, r.loss)
            last[0] = r.tokens

        return on_chunk

    if together:
        train_seeds(cfgs[0], [c.train.seed for c in cfgs], runs, on_chunk=progress(len(cfgs)),
                    lang=lang)
        for _ in runs:
            rep.finished_run({})
        if after_each:
            after_each()
        return
    for cfg, run, resume in zip(cfgs, runs, resumes or [False] * len(runs)):
        train(cfg, run=run, on_chunk=progress(1), lang=lang, resume=resume)
        rep.finished_run({})
        if after_each:
            after_each()


def fit_hint(table: Path) -> str:
    """The `knobsim fit` command for a results table."""
    return (f"knobsim fit --csv {table} --n-col n_params_total --d-col tokens "
            "--loss-col final_eval_loss")
