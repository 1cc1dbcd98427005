"""What a sweep trains: parsing sizes and shards, points (size x tokens x seed), settings,
run names and their directories. The sweep itself is knobsim.scaling.sweep."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from knobsim.config import LanguageConfig, format_count, parse_count
from knobsim.errors import KnobsimError
from knobsim.io import rundir as record

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

# Which points train on one XLA:CPU thread, cores-many side by side, and which on all cores,
# one at a time. A point's thread count changes its bits (docs/performance.md: "Threads change
# the bits"), so it is a function of the point's size and the machine's cores only, never of
# what runs beside it. benchmarks/bench_sweep_cores.py measures, per size, the sweep
# throughput of `cores` one-thread processes side by side over that of one process on all
# cores, and writes (n_params, ratio) pairs; a point runs on one thread when its size is at
# most the break-even (one_thread_up_to: where the ratio falls to 1, interpolated in log N;
# the largest size measured when it never does; sizes below the smallest measured follow it).
# Measured on a 2-core Intel Xeon with AMX (`lscpu` "Intel(R) Xeon(R) Processor", avx512f,
# amx_tile), idle, 2026-12-05: `python benchmarks/bench_sweep_cores.py --sizes
# 1e3,1e4,3e4,1e5 --tokens 2M --repeats 2` (benchmarks/results/bench_sweep_cores-vm-intel-amx.json;
# unpinned workers, no persistent compilation cache, so compiling counts: the steady-state
# ratios are higher, 1.28 / 1.66 / 1.64 / 1.57). 3e5 knobs were measured only at 300k tokens
# with workers pinned to cores (1.07), so they stay on all cores. Another machine: run the
# benchmark there and pass its JSON (Settings.cores_bench / --cores-bench).
CORES_BREAK_EVEN: tuple[tuple[int, float], ...] = (
    (1_002, 1.01), (9_962, 1.28), (30_028, 1.35), (99_935, 1.41))

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
    "final_train_loss", "tokens_per_s", "n_seeds_together", "threads",
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
    jobs: int | None = None  # processes at once for one-thread points; None: the cores
    threads: str = "auto"  # "auto" (CORES_BREAK_EVEN), "all" (every point on all cores,
    #                         in this process: the bits of sweeps before issue 23), "one"
    cores_bench: str | None = None  # a bench_sweep_cores.py JSON to take the break-even from


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
    from knobsim.core.plan import plan_run

    kw = dict(params=p.budget, arch=s.arch, tokens=p.tokens, batch=s.batch, seq=s.seq, lr=lr,
              seed=p.seed, pool_tokens=p.pool_tokens, language=s.language,
              check_memory=s.check_memory)
    cfg = plan_run(**kw)
    if s.evals:
        cfg = plan_run(**kw, eval_every=max(1, cfg.train.steps // s.evals))
    return cfg


def validate_settings(s: Settings) -> None:
    from knobsim.models import sizing

    sizing.family(s.arch)
    if s.vmap not in ("auto", "always", "never"):
        raise KnobsimError(f"--vmap must be auto, always or never, not {s.vmap!r}")
    if s.batch < 1 or s.seq < 2:
        raise KnobsimError(f"--batch must be >= 1 and --seq >= 2, got {s.batch}, {s.seq}")
    if not s.lr_grid or any(not (math.isfinite(f) and f > 0) for f in s.lr_grid):
        raise KnobsimError("--lr-grid must be positive multiples of the default lr, e.g. 0.5,1,2")
    if s.threads not in ("auto", "all", "one"):
        raise KnobsimError(f"--threads must be auto, all or one, not {s.threads!r}")
    if s.jobs is not None and (not isinstance(s.jobs, int) or isinstance(s.jobs, bool) or s.jobs < 1):
        raise KnobsimError(f"--jobs must be a whole number of at least 1 (or auto), not {s.jobs!r}")
    if s.evals is not None and s.evals < 1:
        raise KnobsimError(f"evals must be at least 1, got {s.evals}")
    if not 0 < s.tune_fraction <= 1:
        raise KnobsimError(f"--tune-fraction must be in (0, 1], got {s.tune_fraction}")


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


# -- threads -----------------------------------------------------------------------------


def one_thread_up_to(table: Sequence[Sequence[float]] = CORES_BREAK_EVEN) -> float:
    """The largest size (total knobs) that trains faster as one-thread processes side by side
    than one at a time on all cores, from measured (n_params, ratio) pairs: where the ratio
    first falls to 1 (interpolated linearly in log N), else the largest size measured; 0
    when even the smallest size is no faster side by side."""
    pts = sorted((float(n), float(r)) for n, r in table)
    if not pts or pts[0][1] <= 1.0:
        return 0.0
    for (n0, r0), (n1, r1) in zip(pts, pts[1:]):
        if r1 <= 1.0:
            f = (r0 - 1.0) / (r0 - r1)
            return n1 if f >= 1.0 else float(math.exp(math.log(n0) + f * (math.log(n1) - math.log(n0))))
    return pts[-1][0]


def load_cores_bench(path: str | Path) -> tuple[tuple[float, float], ...]:
    try:
        data = json.loads(Path(path).read_text())
        table = tuple((float(n), float(r)) for n, r in data["ratios"])
    except (OSError, ValueError, KeyError, TypeError):
        raise KnobsimError(f"--cores-bench {path} is not a bench_sweep_cores.py result; run "
                           "python benchmarks/bench_sweep_cores.py --out FILE") from None
    if not table:
        raise KnobsimError(f"--cores-bench {path} holds no sizes")
    return table


def point_threads(n_params: int, s: Settings, cores: int) -> int:
    """XLA threads for a new run of this size on a machine of ``cores`` cores: 1 or all."""
    if s.threads == "all" or cores <= 1:
        return cores
    if s.threads == "one":
        return 1
    table = load_cores_bench(s.cores_bench) if s.cores_bench else CORES_BREAK_EVEN
    return 1 if n_params <= one_thread_up_to(table) else cores


def recorded_threads(path: Path, default: int) -> int:
    """The threads a killed run that will be resumed trained on (its point.json), so that it
    continues on the same (same bits); ``default`` for a run from before threads were
    recorded (it trained in the sweep's own process, on all cores)."""
    try:
        return int(record.read_json(path / "point.json")["threads"])
    except (KnobsimError, KeyError, ValueError, TypeError):
        return default
