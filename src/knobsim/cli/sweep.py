"""`knobsim sweep`: sizes x seeds, resumable, shardable, one results table."""

from __future__ import annotations

from pathlib import Path

import click

from knobsim.cli.options import Count, language_from, language_options
from knobsim.cli.train import stop_handlers
from knobsim.errors import KnobsimError
from knobsim.models import FAMILIES


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise KnobsimError(f"{what} {text!r} must be numbers separated by commas, e.g. 0.5,1,2") from None
    if not vals:
        raise KnobsimError(f"{what} is empty; e.g. 0.5,1,2")
    return vals


def _jobs(text: str) -> int | None:
    """'auto' -> None (the cores); '3' -> 3."""
    text = str(text).strip()
    if text == "auto":
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise KnobsimError(f"--jobs {text!r}: give a number of processes of at least 1, or auto "
                           "(one per core for the points that train on one thread)")
    return n


def _seeds(text: str) -> list[int]:
    """'3' -> seeds 0, 1, 2; '0,4,7' -> those seeds."""
    text = text.strip()
    try:
        if "," not in text:
            n = int(text)
            if n < 1:
                raise ValueError
            return list(range(n))
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise KnobsimError(
            f"--seeds {text!r}: give a count (3 = seeds 0,1,2) or a list like 0,4,7"
        ) from None


@click.command()
@click.option("--params", "sizes", required=True, metavar="RANGE|LIST",
              help="Knob budgets: LOW:HIGH:COUNT log-spaced (1e3:1e6:8) or a list (1e3,1e4,1e5).")
@click.option("--seeds", default="3", show_default=True, metavar="N|LIST",
              help="Seeds per size: a count (3 = 0,1,2) or a list (0,4,7).")
@click.option("--arch", type=click.Choice(list(FAMILIES)), default="transformer",
              show_default=True, help="Model family.")
@click.option("--tokens", type=Count(), default=None,
              help="Training tokens per run, the same at every size.")
@click.option("--tokens-per-param", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Training tokens = this x the exact knob count of each size (20: Chinchilla). "
                   "Default without --tokens: train's rule (20 per knob within 1M..2M).")
@click.option("--pool-tokens", type=Count(), default=None,
              help="Finite data: a fixed pool of this many tokens, repeated in epochs.")
@click.option("--batch", type=click.IntRange(1), default=16, show_default=True, help="Sequences per step.")
@click.option("--seq", type=click.IntRange(2), default=64, show_default=True, help="Characters per sequence.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Peak learning rate for every size (default: the size-aware rule).")
@click.option("--tune-lr", is_flag=True,
              help="Per size, try the rule's lr x --lr-grid on a short budget and keep the best.")
@click.option("--lr-grid", default=",".join(f"{f:g}" for f in (0.25, 0.5, 1, 2, 4)), show_default=True,
              help="With --tune-lr: multiples of the rule's lr to try.")
@click.option("--tune-fraction", type=click.FloatRange(0, 1, min_open=True), default=0.25,
              show_default=True, help="With --tune-lr: tuning runs see this share of the tokens.")
@click.option("--tune-only", is_flag=True,
              help="Run only the lr grid (before sharded runs; it can be sharded itself).")
@click.option("--shard", default=None, metavar="I/N",
              help="Run every N-th run starting at I (0 <= I < N); a plain rerun merges the table.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None,
              metavar="[ADDRESS]",
              help="Train every run as a Ray task: --ray alone on a local cluster, --ray "
                   "HEAD:6379 or ray://HEAD:10001 on that cluster (pip install 'knobsim[ray]').")
@click.option("--ray-device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto",
              show_default=True,
              help="With --ray: per run, one GPU, or as many CPUs as its XLA threads (--threads); "
                   "auto = a GPU when the cluster has them.")
@click.option("--vmap", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Train a size's seeds in one vmapped program: auto = where the measured "
                   "break-even (benchmarks/bench_seeds.py) says it is faster.")
@click.option("--vmap-bench", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A bench_seeds.py JSON measured on this machine, for --vmap auto.")
@click.option("--jobs", "jobs", default="auto", show_default=True, metavar="N|auto",
              help="Processes at once for the points that train on one thread; auto = one per "
                   "core. Never changes a run's bits (the threads rule does not depend on it).")
@click.option("--threads", type=click.Choice(["auto", "all", "one"]), default="auto",
              show_default=True,
              help="XLA threads per point: auto = one thread up to the measured break-even size "
                   "(benchmarks/bench_sweep_cores.py), all cores above it; all = every point on "
                   "all cores, one at a time (the bits of sweeps before issue 23); one = every "
                   "point on one thread. Threads change a run's bits.")
@click.option("--cores-bench", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A bench_sweep_cores.py JSON measured on this machine, for --threads auto.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Sweep directory (default: sweeps/<arch>-<params>). Reruns resume it.")
@click.option("--dry-run", is_flag=True, help="List the runs and what is finished; train nothing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@language_options
def sweep(sizes, seeds, arch, tokens, tokens_per_param, pool_tokens, batch, seq, lr, tune_lr,
          lr_grid, tune_fraction, tune_only, shard, ray_address, ray_device, vmap, vmap_bench, jobs,
          threads, cores_bench, out, dry_run, quiet, **lang_kw):
    """Train every size x seed, skipping finished runs; write DIR/results.csv.

    \b
    Examples:
      knobsim sweep --params 1e3:1e6:8 --seeds 3
      knobsim sweep --params 1e3,1e4,1e5 --tokens-per-param 20 --tune-lr
      knobsim sweep --params 1e3:1e5:5 --tokens 4M --pool-tokens 1M --out sweeps/finite
      knobsim sweep --params 1e3:1e6:8 --shard $SLURM_ARRAY_TASK_ID/8   # then once more, plain
      knobsim sweep --params 1e3:1e6:8 --ray HEAD:6379   # every run a task on a Ray cluster
      knobsim sweep --params 1e3:1e5:5 --jobs 1          # one process at a time, same bits

    A run is finished when its directory has summary.json: rerun the same command to
    resume after a kill. With --shard, each process trains every N-th run; a plain rerun
    afterwards finds them all finished and writes the one merged table. The table has one
    row per run; fit it with the `knobsim fit` line printed at the end.
    """
    from knobsim.scaling import sweep as S
    from knobsim.config import format_count

    budgets = S.parse_sizes(sizes)
    shard_t = S.parse_shard(shard)
    n_jobs = _jobs(jobs)
    if ray_address is not None:
        if shard is not None:
            raise KnobsimError("give --ray or --shard, not both: the Ray cluster schedules "
                               "every run itself")
        from knobsim.scaling.ray_sweep import import_ray

        import_ray()  # a missing Ray fails here, before anything is planned or written
    elif ray_device != "auto":
        raise KnobsimError("--ray-device needs --ray")
    if lr is not None and tune_lr:
        raise KnobsimError("give --lr or --tune-lr, not both")
    if tune_only and not tune_lr:
        raise KnobsimError("--tune-only runs the lr grid; add --tune-lr")
    language = language_from(lang_kw)
    points = S.sweep_points(budgets, _seeds(seeds), arch=arch, tokens=tokens,
                            tokens_per_param=tokens_per_param, pool_tokens=pool_tokens or 0,
                            lr=lr, batch=batch, seq=seq)
    settings = S.Settings(arch=arch, batch=batch, seq=seq, language=language, tune_lr=tune_lr,
                          lr_grid=_floats(lr_grid, "--lr-grid"), tune_fraction=tune_fraction,
                          vmap=vmap, vmap_bench=vmap_bench, check_memory=not dry_run,
                          jobs=n_jobs, threads=threads, cores_bench=cores_bench)
    S.plan_all(points, settings)
    if cores_bench:
        S.load_cores_bench(cores_bench)  # a bad file fails here, before anything is written
    if out is None:
        name = f"{arch}-{sizes}".replace(":", "_").replace(",", "_").replace(".", "p")
        out = Path("sweeps") / name
    from knobsim.cli.train import _err_console

    console = _err_console()
    if dry_run:
        _print_plan(console, S, points, settings, out, shard_t)
        return
    rep = S.Reporter() if quiet else S.RichReporter(console)
    with stop_handlers():  # Ctrl-C / SIGTERM: runs in training checkpoint, then stop
        if ray_address is not None:
            from knobsim.scaling.ray_sweep import run_sweep_ray

            res = run_sweep_ray(points, settings, out, address=ray_address, device=ray_device,
                                reporter=rep, tune_only=tune_only)
        else:
            res = S.run_sweep(points, settings, out, shard=shard_t, reporter=rep,
                              tune_only=tune_only)
    what = "lr grid" if tune_only else "runs"
    console.print(f"{what}: trained {res.trained}, already finished {res.skipped}; "
                  f"table {res.table} ({len(res.rows)} rows)")
    for key, lr_ in sorted(res.tuned.items()):
        console.print(f"  tuned lr at {format_count(key[0])} knobs: {lr_:.3g}")
    if not tune_only and res.rows:
        line, note = fit_line(res.rows, res.table)
        if line:
            console.print(f"fit it: {line}", soft_wrap=True)
        if note:
            console.print(f"  ({note})", soft_wrap=True)


def fit_line(rows: list[dict], table) -> tuple[str | None, str | None]:
    """The `knobsim fit` command that fits this results table (None when nothing can be
    fitted), and a note on what it does and why (None when there is nothing to add). It asks
    only for the laws the table's columns can determine: L(N) alone when D follows N. A law
    with a floor needs more distinct values of its variable than constants along it (E, a
    coefficient, an exponent): with 3 sizes E is fixed at the language's exact floor
    (knobsim.scaling.fit warns after the fit when a table still falls short)."""
    from knobsim.config import format_count
    from knobsim.scaling.results import fit_hint

    pairs = {(r["n_params_total"], r["tokens"]) for r in rows}
    n_n = len({n for n, _ in pairs})
    n_d = len({d for _, d in pairs})
    if n_n > 1 and n_d > 1 and len(pairs) > max(n_n, n_d):
        return fit_hint(table), None  # several D at some N: every law, L(N,D) included
    if n_n == 1 and n_d == 1:
        return None, (f"one size and one token count ({format_count(next(iter(pairs))[0])} knobs): "
                      "nothing to fit; sweep several --params")
    var, k = ("n", n_n) if n_n > 1 else ("d", n_d)
    what = "sizes" if var == "n" else "token counts"
    col = "--n-col n_params_total" if var == "n" else "--d-col tokens"
    line = f"knobsim fit --csv {table} {col} --loss-col final_eval_loss --law {var}"
    follows = (f"; D follows N here ({n_d} token counts), so L(N,D) cannot be fitted"
               if var == "n" and n_d > 1 else "")
    floors = {r["entropy_floor"] for r in rows}
    if k >= 4:
        return line, (f"L(N): {k} sizes{follows}" if follows else None)
    if len(floors) == 1:
        line = f"{line} --floor {next(iter(floors)):.6g}"
    if k == 3 and len(floors) == 1:
        return line, (f"E fixed at the language's exact entropy floor: {k} {what} cannot fit E as "
                      f"well as the coefficient and exponent; sweep 4 or more to fit E{follows}")
    return line, (f"only {k} {what}: too few to determine a power law with a floor (3 with E "
                  f"fixed, 4 to fit E), and the fit will say so; sweep more{follows}")


def _print_plan(console, S, points, settings, out, shard):
    from knobsim.config import format_count

    from knobsim.core import runtime

    mine = S.shard_points(points, shard)
    cores = runtime.cores()
    console.print(f"{len(points)} runs in the sweep, {len(mine)} in this shard; out {out}; "
                  f"{cores} cores, {settings.jobs or cores} one-thread runs at a time")
    for p in mine:
        cfg = S._plan(p, settings, p.lr)
        name = S.run_name(p, settings, p.lr)
        done = (p.lr is not None or not settings.tune_lr) and (out / "runs" / name / "summary.json").is_file()
        t = S.point_threads(cfg.model.n_params_total, settings, cores)
        console.print(f"  N={cfg.model.n_params_total:>10,}  D={format_count(cfg.train.tokens):>6}  "
                      f"seed {p.seed}  lr {'tuned' if settings.tune_lr and p.lr is None else f'{cfg.optim.lr:.3g}'}"
                      f"  {t} thread{'s' if t > 1 else ''}  {'finished' if done else 'to train'}")
