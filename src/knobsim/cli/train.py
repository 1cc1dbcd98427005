"""`knobsim train`: parse and validate options, then call the library."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import click

from knobsim.config import format_count
from knobsim.errors import KnobsimError
from knobsim.models import FAMILIES
from knobsim.cli.options import (
    Count,
    _err_console,
    language_from,
    language_options,
    parallel_from,
    parallel_options,
    watch_from,
    watch_options,
)


def print_plan(console, cfg, count, lang, memory: int, available: int | None = None) -> None:
    from rich.table import Table

    from knobsim.models import sizing

    m, t = cfg.model, cfg.train
    fam = sizing.family(m.arch)
    diff = m.n_params_total - m.budget
    console.print(f"[bold]{m.arch}[/] for a budget of {m.budget:,} knobs: {fam.describe(m.shape)}")
    if abs(diff) > 0.001 * m.budget:
        console.print(
            f"  nearest shape has {m.n_params_total:,} knobs, {diff:+,} ({100 * diff / m.budget:+.1f}%) "
            "from the budget"
        )
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    table.add_column("component")
    table.add_column("knobs", justify="right")
    table.add_column("share", justify="right")
    for name, n in sorted(count.by_component.items(), key=lambda kv: -kv[1]):
        table.add_row(name, f"{n:,}", f"{100 * n / count.total:.1f}%")
    table.add_row("total", f"{count.total:,}", "100%", style="bold")
    table.add_row("non-embedding", f"{count.nonembedding:,}", f"{100 * count.nonembedding / count.total:.1f}%")
    console.print(table)
    console.print(
        f"  tokens {format_count(t.tokens)} ({t.tokens / count.total:.1f} per knob) = {t.steps:,} steps "
        f"x batch {t.batch} x seq {t.seq}; lr {cfg.optim.lr:g} (warmup {cfg.optim.warmup_steps}, cosine); "
        f"seed {t.seed}"
    )
    have = f"; this machine has {available / 2**30:,.1f} GiB available" if available else ""
    amount = f"{memory / 2**30:,.1f} GiB" if memory >= 2**30 else f"{memory / 2**20:,.1f} MiB"
    console.print(f"  memory to train ~{amount} (estimate{have})")
    import jax

    devs = jax.devices()
    from knobsim.core import runtime

    console.print(f"  backend: {jax.default_backend()} ({len(devs)} x {devs[0].device_kind}); compute "
                  f"{cfg.dtype}; malloc on huge pages: {'yes' if runtime.hugepages_active() else 'no'}")
    from knobsim.core import parallel

    console.print(f"  {parallel.describe(parallel.data_mesh(n=cfg.devices))}")
    console.print(
        f"  language: {len(lang.words):,} words, zipf {lang.config.zipf:g}; floor {lang.entropy_rate:.4f} "
        f"nats/char, unigram {lang.unigram_loss:.4f}, bigram {lang.bigram_loss:.4f}"
    )


def print_summary(console, s: dict, run_path) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("knobs", f"{s['n_params_total']:,} (non-embedding {s['n_params_nonembedding']:,})")
    table.add_row("tokens seen", f"{format_count(s['tokens'])} ({s['tokens'] / s['n_params_total']:.1f} per knob)")
    table.add_row("train loss", f"{s['final_train_loss']:.4f} nats/char (mean of the last chunk)")
    table.add_row("eval loss", f"{s['final_eval_loss']:.4f} nats/char (from {s['initial_eval_loss']:.3f} at init)")
    table.add_row("entropy floor", f"{s['entropy_floor']:.4f} nats/char; gap {s['gap_nats']:.4f} nats ({s['gap_pct']:.1f}%)")
    table.add_row("baselines", f"unigram {s['unigram_loss']:.4f}, bigram {s['bigram_loss']:.4f}")
    table.add_row("throughput", f"{format_count(s['tokens_per_s'])} tokens/s on {s['backend']}")
    # (CPU devices share one machine's cores: its peak, once)
    devices = f" of {s['devices']} devices" if s.get("devices", 1) > 1 and s.get("backend") != "cpu" else ""
    attention = (f"; {100 * s['mfu_with_attention']:.1f}% with attention"
                 if s.get("arch") == "transformer" else "")  # only transformers attend
    table.add_row("MFU", f"{100 * s['mfu']:.1f}% of {s['peak_flops'] / 1e9:.0f} GFLOP/s measured "
                         f"{s.get('dtype', 'float32')} peak{devices} (6N{attention})")
    segs = s.get("segments") or []
    n = len(segs) - 1
    over = f" over {n + 1} segments (resumed {n} time{'s' if n > 1 else ''})" if n else ""
    table.add_row("wall time", f"{s['wall_s']:.1f} s{over} (compilation included)")
    if s.get("knobs"):
        k = s["knobs"]
        table.add_row("knobs moved", f"||Θ - Θ0|| / ||Θ0|| = {k['rel_drift']:.3g}; "
                                     f"{100 * k['sign_flip']:.1f}% flipped sign; last update/weight "
                                     f"{k['update_ratio']:.2g}")
    if run_path is not None:
        table.add_row("run", str(run_path))
    console.print(table)


@click.command()
@click.option("--params", "budget", type=Count(), default="1e5", show_default=True,
              help="Knob budget: 1e5, 100k, 2.5M or 100000. The shape is chosen to fit it.")
@click.option("--arch", type=click.Choice(list(FAMILIES)), default="transformer",
              show_default=True, help="Model family.")
@click.option("--tokens", type=Count(), default=None,
              help="Training tokens (default: 20 per knob, within 1M..2M).")
@click.option("--steps", type=click.IntRange(1), default=None, help="Optimizer steps (instead of --tokens).")
@click.option("--batch", type=click.IntRange(1), default=16, show_default=True, help="Sequences per step.")
@click.option("--seq", type=click.IntRange(2), default=64, show_default=True, help="Characters per sequence.")
@click.option("--lr", type=float, default=None, help="Peak learning rate (default: size-aware rule).")
@click.option("--seed", type=int, default=0, show_default=True, help="Init and data seed.")
@click.option("--dtype", default="float32", show_default=True,
              help="Compute dtype: float32 or bf16 (bf16 matmuls and activations; the weights, "
                   "optimizer state and loss stay float32). bf16 pays on GPUs and TPUs, not on CPUs.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run directory (default: runs/<arch>-<params>-s<seed>-<time>). Must not exist.")
@click.option("--chunk", type=click.IntRange(1), default=None,
              help="Steps per jitted call (default: about 1/40 of the run).")
@click.option("--ckpt-every", type=click.IntRange(0), default=None,
              help="Steps between checkpoints, rounded up to whole chunks (default: a quarter "
                   "of the run; 0: only at the start and the end).")
@click.option("--keep", type=click.IntRange(1), default=2, show_default=True,
              help="Checkpoints to keep (the newest).")
@click.option("--resume", "resume_path", type=click.Path(path_type=Path), default=None,
              help="Continue the run in this directory from its latest checkpoint "
                   "(its own config; other training options are refused).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out run directory.")
@click.option("--dry-run", is_flag=True, help="Print the shape, counts and memory; train nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: one JSON object. Else: print the summary as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--record-mfu", is_flag=True,
              help="Keep this run's measured MFU in $KNOBSIM_CACHE/mfu.json (default "
              "~/.cache/knobsim) for `knobsim zoo`'s training times, if it is the largest "
              "transformer recorded on this machine (float32, one device). Off by default: a "
              "run writes nothing outside its run directory but knobsim's caches.")
@parallel_options
@watch_options
@language_options
def train(budget, arch, tokens, steps, batch, seq, lr, seed, dtype, out, chunk, ckpt_every, keep,
          resume_path, overwrite, dry_run, as_json, quiet, record_mfu, **lang_kw):
    """Train a model of about --params knobs on the synthetic language.

    Knob statistics, sampled dials and weight snapshots are recorded into the run
    directory as it trains (docs/watching.md); `knobsim watch RUN` draws them.

    \b
    Examples:
      knobsim train --params 1e5
      knobsim train --params 1e5 --watch          # live view of the knobs
      knobsim train --params 2.5M --tokens 4e7 --seed 3 --no-watch
      knobsim train --arch linear --params 200
      knobsim train --params 1e9 --dry-run --json
      knobsim train --resume runs/transformer-1e5-s0-20261129-063000
    """
    from knobsim.core import parallel, runtime
    from knobsim.io import multihost
    from knobsim.io import rundir as record

    # First, before JAX starts: --distributed, and how many CPU devices the run gets.
    devices = parallel_from(lang_kw, _recorded_devices(resume_path) if resume_path is not None
                            else parallel.cpu_split(arch, budget, batch, runtime.cores()))
    if resume_path is not None:
        return _resume(resume_path, quiet, as_json, record_mfu, devices, lang_kw)
    from knobsim.data.language import build_language
    from knobsim.models import sizing
    from knobsim.core.plan import plan_run

    from knobsim.core.plan import _available_memory

    watch, live = watch_from(lang_kw)
    language = language_from(lang_kw)
    lang = build_language(language)
    plan_kw = dict(params=budget, arch=arch, tokens=tokens, steps=steps, batch=batch, seq=seq,
                   lr=lr, seed=seed, language=language, chunk=chunk, ckpt_every=ckpt_every,
                   keep=keep, dtype=dtype, watch=watch, devices=devices)
    cfg = plan_run(**plan_kw, check_memory=not dry_run)
    count = sizing.count_params(arch, cfg.model.shape)
    memory = sizing.memory_bytes(arch, cfg.model.shape, count.total, batch, seq)
    if dry_run:
        return _dry_run(cfg, plan_kw, count, lang, memory, as_json)
    parallel.check_batch(batch, parallel.data_mesh(n=cfg.devices))  # before the run directory is made

    if multihost.multi_process():  # process 0 writes the run; all share its checkpoints
        run = multihost.shared_run_dir(out, cfg, overwrite)
    elif out is not None:
        record.check_out_dir(out, overwrite=overwrite)
        if overwrite:
            record.remove_run_dir(out)
        run = record.RunDir.create(out)
    else:
        text = format_count(budget).replace(".", "p")
        run = record.RunDir.create(Path("runs") / record.default_run_name(arch, text, seed), unique=True)

    console = _err_console()
    if not as_json:
        print_plan(console, cfg, count, lang, memory, _available_memory())
    install_stop_handlers()
    summary = run_with_progress(cfg, run, lang, quiet or as_json, console, live=live)
    _record(summary, record_mfu, console, as_json)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        print_summary(console, summary, run.path)


def _dry_run(cfg, plan_kw: dict, count, lang, memory: int, as_json: bool) -> None:
    """Show the plan, then apply the very checks the real run would (memory, the batch over
    the devices) and refuse as it would: one error line, exit code 2."""
    from knobsim.core import parallel
    from knobsim.core.plan import _available_memory, plan_run

    refusal = None
    try:
        plan_run(**plan_kw, check_memory=True)
        parallel.check_batch(cfg.train.batch, parallel.data_mesh(n=cfg.devices))
    except KnobsimError as e:
        refusal = str(e)
    available = _available_memory()
    if as_json:
        click.echo(json.dumps({
            "arch": cfg.model.arch, "budget": cfg.model.budget,
            "n_params_total": count.total, "n_params_nonembedding": count.nonembedding,
            "n_params_embedding": count.embedding, "by_component": count.by_component,
            "shape": cfg.model.shape.to_dict(), "memory_bytes": memory, "memory_available_bytes": available,
            "tokens": cfg.train.tokens, "steps": cfg.train.steps, "lr": cfg.optim.lr, "dtype": cfg.dtype,
            "devices": cfg.devices, "refused": refusal,
        }))
    else:
        print_plan(_err_console(), cfg, count, lang, memory, available)
    if refusal is not None:
        raise KnobsimError(f"--dry-run: the real run would be refused: {refusal}")


# Options a resumed run takes from its own config.json; giving them is an error.
_CONFIG_OPTIONS = ("budget", "arch", "tokens", "steps", "batch", "seq", "lr", "seed", "dtype", "out", "chunk",
                   "ckpt_every", "keep", "overwrite", "dry_run", "preset", "lang_seed", "n_words", "zipf",
                   "n_successors", "successor_weight", "syllables_per_decade", "watch_every", "knobs_per_tensor",
                   "no_snapshots", "tensorboard")


def install_stop_handlers() -> None:
    """SIGINT/SIGTERM finish the current chunk, write a checkpoint and exit 130/143 with the
    resume command; a second signal stops at once."""
    import signal

    from knobsim.core.train import STOP

    def handler(signum, frame):
        if STOP["signal"] is not None:
            raise KeyboardInterrupt
        STOP["signal"] = signum

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def stop_handlers():
    """install_stop_handlers while a sweep runs (`knobsim sweep`, the experiments); the
    caller's own handlers after it."""
    import signal

    old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    install_stop_handlers()
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _record(summary: dict, record_mfu: bool, console, as_json: bool) -> None:
    """--record-mfu: the zoo's MFU from this run (knobsim.core.hardware.record_run_mfu)."""
    if not record_mfu:
        return
    from knobsim.core import hardware

    if not hardware.record_run_mfu(summary) and not as_json:
        console.print("--record-mfu: not recorded (the zoo's MFU is one float32 seed on one device)")


def _recorded_devices(path: Path) -> int:
    """The device count a run directory recorded (1 where it recorded none or cannot be
    read: _resume then says what is wrong with it)."""
    from knobsim.core.runs import load_run

    try:
        return load_run(path).cfg.devices or 1
    except KnobsimError:
        return 1


def _resume(path: Path, quiet: bool, as_json: bool, record_mfu: bool, devices: int | None, kw: dict):
    from knobsim.core.runs import load_run, resume

    ctx = click.get_current_context()
    given = [p.opts[0] for p in ctx.command.params
             if p.name in _CONFIG_OPTIONS and ctx.get_parameter_source(p.name) != click.core.ParameterSource.DEFAULT]
    if given:
        raise KnobsimError(f"--resume continues a run with its own config; drop {', '.join(given)}")
    try:
        run = load_run(path)
        if run.finished:
            raise KnobsimError(f"{path}: this run is already finished (summary.json exists)")
    except KnobsimError as e:
        raise KnobsimError(f"--resume {e}") from None
    console = _err_console()
    if not as_json:
        step = run.latest_checkpoint()
        if step is not None:  # (without one, train says there is nothing to resume from)
            console.print(f"resuming {path} at step {step:,} of {run.cfg.train.steps:,} (its latest "
                          "checkpoint; what was logged after it is replayed)")
    install_stop_handlers()
    summary = run_with_progress(run.cfg, None, None, quiet or as_json, console, live=bool(kw.get("watch")),
                                runner=lambda on_chunk=None: resume(path, on_chunk=on_chunk, loaded=run,
                                                                    devices=devices))
    _record(summary, record_mfu, console, as_json)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        print_summary(console, summary, run.path)


def run_with_progress(cfg, run, lang, quiet, console, live=False, runner=None):
    """Train with a progress bar (or, with ``live`` and a watched ``cfg``, the live knob view)
    on ``console``. ``runner(on_chunk=...)`` does the work (default: train.train of ``cfg``
    into ``run``)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from knobsim.core.train import train as train_fn

    if runner is None:
        def runner(on_chunk=None):
            return train_fn(cfg, run=run, on_chunk=on_chunk, lang=lang)
    if quiet:
        return runner()
    if live and cfg.watch is not None:
        from rich.live import Live

        from knobsim.watch.live import LiveView

        view = LiveView(cfg)
        with Live(view, console=console, refresh_per_second=4, transient=False) as lv:
            def on_live(r):
                view.update(r)
                lv.refresh()

            out = runner(on_chunk=on_live)
        console.print()  # the live view ends without a newline when the output is piped
        return out
    progress = Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        TextColumn("step {task.completed:,.0f}/{task.total:,.0f}"),
        TextColumn("{task.fields[tokens]} tok"),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[tps]} tok/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task("train", total=cfg.train.steps, tokens="0", loss="-", tps="-")

        def on_chunk(r):
            progress.update(task, completed=r.step, tokens=format_count(r.tokens),
                            loss=f"{r.loss:.3f}", tps=format_count(r.tokens_per_s))

        return runner(on_chunk=on_chunk)
