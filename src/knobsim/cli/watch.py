"""`knobsim watch` (figures of a run's knobs) and `knobsim finetune` (continue a run on a
shifted language): parse and validate, then one library call."""

from __future__ import annotations

import json
from pathlib import Path

import click

from knobsim.cli.options import Count, _err_console, language_changes, language_options, watch_from, watch_options
from knobsim.cli.train import run_with_progress
from knobsim.errors import KnobsimError


@click.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Where the figures go (default: RUN/figures).")
@click.option("--no-gif", is_flag=True, help="Skip the animated dials (the slowest figure).")
@click.option("--no-knowledge", is_flag=True,
              help="Skip knowledge.json and knowledge.png: which words the model knows (it reads "
                   "~1M characters of the language with the final weights).")
def watch(run, out, no_gif, no_knowledge):
    """Draw a run's knobs: trajectories, drift, update/weight ratios, histograms, spectra,
    the knobs that moved most, and an animated GIF of dials.

    \b
    Examples:
      knobsim watch runs/transformer-100k-s0-20250101-120000
      knobsim watch runs/ft --no-gif
    """
    from knobsim.watch.figures import render
    from knobsim.watch.live import headline

    res = render(run, out=out, gif=not no_gif)
    console = _err_console()
    for line in headline(res["record"]):
        console.print(line)
    written, skipped = list(res["written"]), list(res["skipped"])
    if not no_knowledge:
        k = _knowledge(Path(run), res["record"].path, out or res["record"].path / "figures", written, skipped)
        if k is not None:
            console.print(f"  knows ~{k['k_eff']:,.0f} words: an ideal learner of the {k['k_eff']:,.0f} most "
                          f"frequent words matches its loss ({k['model_nats_per_char']:.4f} nats/char "
                          f"on {k['occurrences']:,} words)")
    for p in written:
        console.print(f"  wrote {p}")
    for why in skipped:
        console.print(f"  [yellow]skipped[/] {why}")


def _knowledge(run: Path, path: Path, out: Path, written: list, skipped: list) -> dict | None:
    """RUN/knowledge.json (measured once per final weights) and figures/knowledge.png."""
    from knobsim.io.rundir import read_json, write_json_atomic
    from knobsim.watch.knowledge import plot_knowledge

    params, target = path / "params.npz", path / "knowledge.json"
    if not params.exists():
        skipped.append("knowledge: the run has no final weights (params.npz) yet")
        return None
    if target.exists() and target.stat().st_mtime >= params.stat().st_mtime:
        k = read_json(target)
    else:
        from knobsim.core.knowledge import measure_knowledge

        k = measure_knowledge(path)
        write_json_atomic(target, k)
        written.append(target)
    written.append(plot_knowledge(k, Path(out)))
    return k


@click.command()
@click.argument("run", type=click.Path(path_type=Path))
@language_options(of_run=True)
@click.option("--tokens", type=Count(), default=None, help="Fine-tune tokens (default: 1/4 of the run's).")
@click.option("--steps", type=click.IntRange(1), default=None, help="Fine-tune steps (instead of --tokens).")
@click.option("--batch", type=click.IntRange(1), default=None, help="Sequences per step (default: the run's).")
@click.option("--lr", type=float, default=None, help="Peak learning rate (default: the run's).")
@click.option("--seed", type=int, default=None, help="Data seed (default: the run's seed + 1).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run directory of the fine-tune (default: RUN-ft-<time>). Must not exist.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@watch_options
def finetune(run, tokens, steps, batch, lr, seed, out, as_json, quiet, **kw):
    """Continue RUN from its final weights on a shifted language; report which knobs moved,
    how far compared with pre-training, and how much the original language was forgotten.

    \b
    Examples:
      knobsim finetune runs/base --lang-seed 1
      knobsim finetune runs/base --zipf 0.8 --tokens 2e5 --out runs/base-zipf08
    """
    import time

    from knobsim.io import rundir as record
    from knobsim.data.language import build_language, validate_language_config
    from knobsim.core.finetune import finetune as finetune_fn
    from knobsim.core.finetune import plan_finetune

    import dataclasses

    language = language_changes(kw)
    w, live = watch_from(kw)
    if lr is not None and not lr > 0:
        raise KnobsimError(f"--lr must be a positive number, got {lr}")
    plan = plan_finetune(run, language=language, tokens=tokens, steps=steps, batch=batch, lr=lr, seed=seed)
    plan = dataclasses.replace(plan, cfg=dataclasses.replace(plan.cfg, watch=w))
    validate_language_config(plan.cfg.language)  # before the run directory exists
    if out is None:
        out = Path(run).parent / f"{Path(run).name}-ft-{time.strftime('%Y%m%d-%H%M%S')}"
        rd = record.RunDir.create(out, unique=True)
    else:
        record.check_out_dir(out)
        rd = record.RunDir.create(out)
    console = _err_console()
    c = plan.cfg
    if not as_json:
        console.print(f"[bold]fine-tune[/] {run} -> {rd.path}: {c.train.steps:,} steps x batch "
                      f"{c.train.batch} x seq {c.train.seq}, lr {c.optim.lr:g}; language "
                      f"{_lang_diff(plan.pre.language, c.language)}")
    lang = build_language(c.language)  # noqa: F841 (built once, cached for the run)
    report = run_with_progress(
        c, rd, lang, quiet or as_json, console, live=live,
        runner=lambda on_chunk=None: finetune_fn(plan, rd, on_chunk=on_chunk))
    if as_json:
        click.echo(json.dumps(record.clean_json(report)))
    else:
        print_report(console, report, rd.path)


def _lang_diff(a, b) -> str:
    import dataclasses

    da, db = dataclasses.asdict(a), dataclasses.asdict(b)
    return ", ".join(f"{k} {da[k]} -> {db[k]}" for k in da if da[k] != db[k])


def print_report(console, r: dict, path) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(box=None, pad_edge=False, show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("original language", f"eval loss {r['original_loss_before']:.4f} -> {r['original_loss_after']:.4f} "
                                   f"nats/char: forgetting {r['forgetting_nats']:+.4f} "
                                   f"(floor {r['pretrain_entropy_floor']:.4f})")
    t.add_row("new language", f"eval loss {r['new_loss_before']:.4f} -> {r['new_loss_after']:.4f} nats/char "
                              f"(floor {r['new_entropy_floor']:.4f})")
    t.add_row("knobs moved", f"||W_ft - W_pre|| / ||W_pre|| = {r['finetune_rel_drift']:.3g} vs pre-training "
                             f"||W_pre - W_0|| / ||W_0|| = {r['pretrain_rel_drift']:.3g} "
                             f"(ratio {r['drift_ratio']:.3g}; "
                             f"{r['finetune_tokens'] / r['pretrain_tokens']:.2g}x the tokens)")
    console.print(t)
    tt = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("tensor", "pre-train drift", "fine-tune drift", "ratio"):
        tt.add_column(col, justify="left" if col == "tensor" else "right")
    mats = [x for x in r["tensors"] if x["kind"] != "vector"]
    for x in sorted(mats, key=lambda x: -(x["finetune_rel_drift"] or 0))[:12]:
        tt.add_row(x["tensor"], f"{x['pretrain_rel_drift']:.3g}", f"{x['finetune_rel_drift']:.3g}", f"{x['ratio']:.3g}")
    console.print("[bold]matrices that moved most in the fine-tune[/] (relative Frobenius drift)")
    console.print(tt)
    if "forgetting_removed_by_restoring" in r:
        parts = sorted(r["forgetting_removed_by_restoring"].items(), key=lambda kv: -kv[1])
        console.print("[bold]forgetting removed by restoring one layer[/] (nats on the original language): "
                      + ", ".join(f"{k} {v:+.3f}" for k, v in parts))
    # Ranked by the change in units of the tensor's RMS (finetune.json's change_rms); the
    # values themselves are weights.
    console.print("[bold]knobs that moved most[/], ranked by |change| / RMS of their tensor "
                  "(values in weight units):")
    for k in r["top_knobs"][:4]:
        idx = "[" + ", ".join(str(i) for i in k["index"]) + "]"
        change = k["finetuned"] - k["pretrained"]
        console.print(escape(f"  {k['tensor']}{idx}  {k['pretrained']:+.3f} -> {k['finetuned']:+.3f}  "
                             f"(change {change:+.3f} = {k['change_rms']:.2g} x the tensor's RMS)"))
    console.print(f"  run {path} (finetune.json has every number; `knobsim watch {path}` draws it)")
