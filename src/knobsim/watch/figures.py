"""Figures of a watched run, read from its run directory: ``knobsim watch RUN``.

    render(run) -> [paths]     everything below, into RUN/figures/
      loss.png            train and eval loss vs step, with the entropy floor
      dials.png           sampled knobs' values vs step, one panel per layer
      drift.png           relative drift ||W - W_ref||_F / ||W_ref||_F per tensor vs step (log-log)
      update_ratio.png    per-step ||dW|| / ||W|| per tensor vs step, the 1e-3 rule marked
      histograms.png      weight histograms at the snapshot steps, per tensor (snapshots)
      spectra.png         ESD power-law alpha, top singular value, stable rank (snapshots)
      spectra.json        the numbers behind spectra.png
      movers.png          the knobs that moved most, and where they live
      dials.gif           a grid of dials turning through training

Plots only read; they never train (DESIGN.md). The figures of weights (histograms,
spectra, movers) are in weights.py, the GIF in gif.py, the terminal views in live.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knobsim.io.rundir import read_json, read_metrics
from knobsim.watch import stats as knobs
from knobsim.watch.recorder import KnobRecord, read_watch, tensor_layer
from knobsim.watch.style import (
    files_only_backend,
    WEIGHT_UNITS,
    role,
    _layers,
    _matrices,
    role_key,
    _roles,
    _positive,
    _figure_legend,
    _layer_colors,
    _ref_symbol,
    _ref_words,
    _style,
    _grid,
    _save,
    _tidy_log_axis,
    _title,
)
from knobsim.watch.gif import render_gif
from knobsim.watch.weights import plot_histograms, plot_movers, plot_spectra


# -- the figures ------------------------------------------------------------------------


def plot_loss(rec: KnobRecord, out: Path) -> Path | None:
    import matplotlib.pyplot as plt

    try:
        rows = read_metrics(rec.path)
    except FileNotFoundError:
        return None
    tr = [(r["step"], r["loss"]) for r in rows if r.get("loss") is not None]
    ev = [(r["step"], r["eval_loss"]) for r in rows if r.get("eval_loss") is not None]
    if not tr and not ev:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.4), layout="constrained")
    if tr:
        s, v = np.array(tr).T
        ax.plot(s, v, color="0.6", lw=0.8, label="train (per step)")
    ft = rec.path / "finetune.json"
    if ev:
        s, v = np.array(ev).T
        ax.plot(s, v, "o-", color="C3", ms=3.5,
                label="eval, new language" if ft.exists() else "eval (fixed set)")
    if ft.exists():  # a fine-tune: the original language before and after (forgetting)
        r = read_json(ft)
        last = max(s for s, _ in (tr or ev))
        ax.plot([0, last], [r["original_loss_before"], r["original_loss_after"]], "s", color="C0", ms=6,
                label=f"eval, original language, before and after (forgetting {r['forgetting_nats']:+.3f})")
    summ = rec.path / "summary.json"
    if summ.exists():
        floor = read_json(summ).get("entropy_floor")
        if floor:
            what = "entropy floor of the new language" if ft.exists() else "entropy floor"
            ax.axhline(floor, color="k", ls="--", lw=0.9, label=f"{what} {floor:.3f}")
    ax.set_xlabel("training step")
    ax.set_ylabel("cross-entropy (nats / character)")
    ax.set_title(_title(rec))
    ax.legend(frameon=True, framealpha=0.9, edgecolor="none", loc="best")
    return _save(fig, out / "loss.png")


def plot_dials(rec: KnobRecord, out: Path, per_tensor: int = 3) -> Path | None:
    """Knob trajectories: each panel a layer, each line a sampled knob of a matrix."""
    import matplotlib.pyplot as plt

    mats = set(_matrices(rec))
    layers = [lay for lay in _layers(rec) if any(tensor_layer(n) == lay for n in mats)]
    if not layers or rec.knobs.shape[1] == 0:
        return None
    roles = _roles([n for n in rec.names if n in mats])
    role_color = {r: f"C{i % 10}" for i, r in enumerate(roles)}
    per_matrix = [sum(t == n for t in rec.knob_tensor) for n in mats]
    recorded = max(per_matrix)
    shown = min(per_tensor, recorded)
    rows, cols = _grid(len(layers), 3)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.0 * rows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(layers):]:
        ax.set_visible(False)
    for ax, lay in zip(axes.flat, layers):
        in_legend = set()
        here = sorted((n for n in rec.names if n in mats and tensor_layer(n) == lay),
                      key=lambda n: role_key(role(n)))
        for name in here:
            cols_of = [j for j, t in enumerate(rec.knob_tensor) if t == name][:per_tensor]
            for j in cols_of:
                label = role(name) if role(name) not in in_legend else None
                in_legend.add(role(name))
                ax.plot(rec.steps, rec.knobs[:, j], color=role_color[role(name)], lw=0.9, label=label)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(lay)
        ax.set_xlabel("training step")
        ax.set_ylabel(f"knob value ({WEIGHT_UNITS})")
    _figure_legend(fig, axes)
    # Say how many of the recorded dials are drawn: `--dials` records 8 per tensor by default,
    # and more than a few lines per matrix would hide each other.
    of = f"{shown} of the {recorded}" if shown < recorded else f"all {recorded}"
    if min(per_matrix) < recorded:
        of += " (fewer in small matrices)"
    fig.suptitle(f"Dials: {of} sampled knobs per matrix, every recorded step\n{_title(rec)}")
    return _save(fig, out / "dials.png")


def _per_role_panels(rec: KnobRecord, stat: str, out: Path, fname: str, ylabel: str,
                     title: str, rule: float | None = None, smooth: int = 1) -> Path | None:
    import matplotlib.pyplot as plt

    mats = _matrices(rec)
    if not mats:
        return None
    roles = _roles(mats)
    colors = _layer_colors(rec)
    keep = rec.steps > 0  # log x: step 0 has no update and zero drift
    steps = rec.steps[keep]
    if len(steps) == 0:
        return None
    panels = roles + ["all knobs"]
    rows, cols = _grid(len(panels), 3)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.0 * rows), squeeze=False,
                             layout="constrained", sharey=True)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)

    def smoothed(y):
        if smooth <= 1 or len(y) < 2 * smooth:
            return y
        import warnings

        pad = np.pad(y, (smooth // 2, smooth - 1 - smooth // 2), mode="edge")
        with warnings.catch_warnings():  # an all-NaN window (step 1) stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(np.lib.stride_tricks.sliding_window_view(pad, smooth), axis=1)

    for ax, r in zip(axes.flat, panels):
        if r == "all knobs":
            y = rec.glob[stat][keep]
            ax.plot(steps, smoothed(_positive(y)), color="C3", label="all knobs (whole model)")
            r = "all knobs (W: the whole model as one vector)"
        else:
            for name in [n for n in mats if role(n) == r]:
                j = rec.names.index(name)
                y = _positive(rec.tensor[stat][keep, j])
                if np.any(np.isfinite(y)):
                    lay = tensor_layer(name)
                    ax.plot(steps, smoothed(y), color=colors[lay], label=lay)
        if rule is not None:
            ax.axhline(rule, color="k", ls="--", lw=0.9, label=f"rule of thumb: {rule:g} per step")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _tidy_log_axis(ax.xaxis, plain=True)
        _tidy_log_axis(ax.yaxis)
        ax.set_title(r)
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.yaxis.set_tick_params(labelleft=True)
    _figure_legend(fig, axes)
    fig.suptitle(f"{title}\n{_title(rec)}")
    return _save(fig, out / fname)


def plot_drift(rec: KnobRecord, out: Path) -> Path | None:
    ref = _ref_symbol(rec)
    return _per_role_panels(
        rec, "rel_drift", out, "drift.png",
        rf"$\|W - {ref}\|_F \,/\, \|{ref}\|_F$", f"Relative drift from {_ref_words(rec)}, per tensor")


def plot_update_ratio(rec: KnobRecord, out: Path) -> Path | None:
    smooth = max(1, len(rec.steps) // 60) | 1
    note = f" (running median of {smooth} records)" if smooth > 1 else ""
    return _per_role_panels(
        rec, "update_ratio", out, "update_ratio.png", r"$\|\Delta W\|_F \,/\, \|W\|_F$ per step",
        f"Update / weight ratio per tensor{note}", rule=knobs.UPDATE_RATIO_RULE, smooth=smooth)


def render(run: Path, out: Path | None = None, gif: bool = True) -> dict:
    """Every figure of a watched run; returns {"written": [paths], "skipped": [why]}."""
    files_only_backend()
    rec = read_watch(Path(run))
    out = Path(out) if out is not None else rec.path / "figures"
    out.mkdir(parents=True, exist_ok=True)
    written, skipped = [], []
    if rec.skipped:
        skipped.append(f"unreadable records left out: {', '.join(rec.skipped)}")
    with _style():
        for fn in (plot_loss, plot_dials, plot_drift, plot_update_ratio):
            p = fn(rec, out)
            (written.append(p) if p else skipped.append(f"{fn.__name__}: nothing to plot"))
        if len(rec.snapshots) >= 2:
            written.append(plot_histograms(rec, out))
            written += [p for p in plot_spectra(rec, out) if p]
        else:
            skipped.append("histograms and spectra: the run has no weight snapshots "
                           "(recorded with --no-snapshots)")
        p = plot_movers(rec, out)
        if p:
            written.append(p)
        if gif:
            p = render_gif(rec, out)
            (written.append(p) if p else skipped.append("dials.gif: too few recorded steps"))
    return {"written": [p for p in written if p], "skipped": skipped, "record": rec}
