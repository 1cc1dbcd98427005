"""Figures of a watched run, read from its run directory: ``knobsim watch RUN``.

    render(run) -> [paths]     everything below, into RUN/figures/
      loss.png            train and eval loss vs step, with the entropy floor
      dials.png           sampled knobs' values vs step, one panel per layer
      drift.png           relative drift ||W - W_ref|| / ||W_ref|| per tensor vs step (log-log)
      update_ratio.png    per-step ||dW|| / ||W|| per tensor vs step, the 1e-3 rule marked
      histograms.png      weight histograms at the snapshot steps, per tensor (snapshots)
      spectra.png         ESD power-law alpha, top singular value, stable rank (snapshots)
      spectra.json        the numbers behind spectra.png
      movers.png          the knobs that moved most, and where they live
      dials.gif           a grid of dials turning through training

Plots only read; they never train (DESIGN.md). Also here: the live terminal view of
``knobsim train --watch`` (LiveView), fed by the host loop's ChunkReport.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from knobsim import knobs
from knobsim.knob_record import KnobRecord, read_watch, tensor_layer
from knobsim.record import read_json, read_metrics, write_json_atomic

DPI = 150
WEIGHT_UNITS = "weight units"


# -- naming and grouping ----------------------------------------------------------------


def role(name: str) -> str:
    """The tensor's job, without its block index: 'blocks.3.mlp.w_in_DF' -> 'mlp.w_in_DF'."""
    parts = name.split(".")
    return ".".join(parts[2:]) if parts[0] == "blocks" and len(parts) > 2 else name


def short(name: str) -> str:
    """'blocks.3.mlp.w_in_DF' -> 'b3.mlp.w_in' (legend-sized)."""
    s = re.sub(r"^blocks\.(\d+)\.", r"b\1.", name)
    return re.sub(r"_[A-Z0-9]+$", "", s)


def layer_rank(layer: str) -> float:
    if layer == "embed":
        return -1
    m = re.match(r"block (\d+)$", layer)
    return int(m.group(1)) if m else 1e6


def _layers(rec: KnobRecord) -> list[str]:
    return sorted({tensor_layer(n) for n in rec.names}, key=lambda s: (layer_rank(s), s))


def _matrices(rec: KnobRecord) -> list[str]:
    return [t["name"] for t in rec.index["tensors"] if len(t["shape"]) >= 2]


def _role_key(r: str) -> tuple:
    """Data-flow order: embedding, attention (qkv before o), MLP (in before out), the rest."""
    group = 0 if r.startswith("embed") else 1 if r.startswith("attn") else 2 if r.startswith("mlp") else 3
    first = 0 if ("qkv" in r or "w_in" in r) else 1
    return (group, first, r)


def _roles(names: list[str]) -> list[str]:
    return sorted({role(n) for n in names}, key=_role_key)


def _positive(y):
    """Values for a log axis: zeros (the first step, whose lr is 0 in warmup) become gaps."""
    y = np.asarray(y, float).copy()
    y[~(y > 0)] = np.nan
    return y


def _figure_legend(fig, axes, ncol: int = 8) -> None:
    """One legend for the whole figure, below the panels (labels deduplicated)."""
    seen = {}
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center",
                   ncol=min(ncol, len(seen)), frameon=False)


def _layer_colors(rec: KnobRecord) -> dict[str, tuple]:
    import matplotlib

    blocks = [lay for lay in _layers(rec) if lay.startswith("block")]
    cmap = matplotlib.colormaps["viridis"]
    colors = {lay: cmap(0.1 + 0.8 * i / max(1, len(blocks) - 1)) for i, lay in enumerate(blocks)}
    others = [lay for lay in _layers(rec) if lay not in colors]
    extra = matplotlib.colormaps["tab10"]
    for i, lay in enumerate(others):
        colors[lay] = (0, 0, 0, 1) if lay == "embed" else extra(3 + i)
    return colors


def _ref_symbol(rec: KnobRecord) -> str:
    return "W_0" if rec.index.get("reference", "init") == "init" else "W_pre"


def _ref_words(rec: KnobRecord) -> str:
    return "initialisation" if rec.index.get("reference", "init") == "init" else "the pre-trained weights"


def _style():
    import matplotlib as mpl

    return mpl.rc_context({
        "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 7.5,
        "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False,
        "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.25, "savefig.dpi": DPI,
        "figure.dpi": DPI, "lines.linewidth": 1.2,
    })


def _grid(n: int, max_cols: int = 4):
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
    tmp.replace(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _title(rec: KnobRecord) -> str:
    cfg = read_json(rec.path / "config.json")
    m = cfg.get("model", {})
    n = m.get("n_params_total")
    fam = f"{m.get('arch', '?')}, {n:,} knobs" if n else m.get("arch", "?")
    ft = " (fine-tune)" if rec.index.get("reference", "init") != "init" else ""
    return f"{rec.path.name}: {fam}{ft}"


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
    rows, cols = _grid(len(layers), 3)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 2.8 * rows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(layers):]:
        ax.set_visible(False)
    for ax, lay in zip(axes.flat, layers):
        shown = set()
        here = sorted((n for n in rec.names if n in mats and tensor_layer(n) == lay),
                      key=lambda n: _role_key(role(n)))
        for name in here:
            cols_of = [j for j, t in enumerate(rec.knob_tensor) if t == name][:per_tensor]
            for j in cols_of:
                label = role(name) if role(name) not in shown else None
                shown.add(role(name))
                ax.plot(rec.steps, rec.knobs[:, j], color=role_color[role(name)], lw=0.9, label=label)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(lay)
        ax.set_xlabel("training step")
        ax.set_ylabel(f"knob value ({WEIGHT_UNITS})")
    _figure_legend(fig, axes)
    fig.suptitle(f"Dials: {per_tensor} sampled knobs per matrix, every recorded step\n{_title(rec)}")
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
        f"||W - {ref}||_F / ||{ref}||_F", f"Relative drift from {_ref_words(rec)}, per tensor")


def plot_update_ratio(rec: KnobRecord, out: Path) -> Path | None:
    smooth = max(1, len(rec.steps) // 60) | 1
    note = f" (running median of {smooth} records)" if smooth > 1 else ""
    return _per_role_panels(
        rec, "update_ratio", out, "update_ratio.png", "||dW||_F / ||W||_F per step",
        f"Update / weight ratio per tensor{note}", rule=knobs.UPDATE_RATIO_RULE, smooth=smooth)


def _hist_tensors(rec: KnobRecord, max_layers: int = 4) -> list[list[str]]:
    """Rows of tensor names for the histogram grid: embedding row, then blocks (first,
    middle and last when there are many)."""
    mats = _matrices(rec)
    layers = [lay for lay in _layers(rec) if any(tensor_layer(n) == lay for n in mats)]
    blocks = [lay for lay in layers if lay.startswith("block")]
    if len(blocks) > max_layers:
        pick = sorted({round(i * (len(blocks) - 1) / (max_layers - 1)) for i in range(max_layers)})
        drop = {b for i, b in enumerate(blocks) if i not in pick}
        layers = [lay for lay in layers if lay not in drop]
    return [sorted((n for n in mats if tensor_layer(n) == lay), key=lambda n: _role_key(role(n)))
            for lay in layers]


def plot_histograms(rec: KnobRecord, out: Path) -> Path | None:
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    from matplotlib.cm import ScalarMappable

    if len(rec.snapshots) < 2:
        return None
    steps = list(rec.snapshots)
    snaps = {s: rec.snapshot(s) for s in steps}
    grid = _hist_tensors(rec)
    cols = max(len(r) for r in grid)
    fig, axes = plt.subplots(len(grid), cols, figsize=(3.0 * cols, 2.3 * len(grid)), squeeze=False,
                             layout="constrained")
    norm = LogNorm(vmin=max(1, steps[1]), vmax=max(steps[-1], 2))
    cmap = plt.get_cmap("viridis")
    for i, row in enumerate(grid):
        for j in range(cols):
            ax = axes[i, j]
            if j >= len(row):
                ax.set_visible(False)
                continue
            name = row[j]
            final = snaps[steps[-1]][name].ravel()
            lim = float(np.max(np.abs(np.percentile(np.concatenate([final, snaps[0][name].ravel()]),
                                                    [0.1, 99.9]))))
            bins = np.linspace(-lim, lim, 61)
            for s in steps:
                w = snaps[s][name].ravel()
                color = "k" if s == 0 else cmap(norm(max(s, 1)))
                h, e = np.histogram(w, bins=bins, density=True)
                ax.stairs(h, e, color=color, lw=1.3 if s in (0, steps[-1]) else 0.8,
                          ls="--" if s == 0 else "-")
            ax.set_yscale("log")
            ax.set_title(short(name), fontsize=8.5)
            ax.set_xlabel(f"knob value ({WEIGHT_UNITS})")
            if j == 0:
                ax.set_ylabel("density (per weight unit)")
    sm = ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=axes, label="training step (dashed black: step 0)", shrink=0.6)
    fig.suptitle(f"Weight histograms at the snapshot steps\n{_title(rec)}")
    return _save(fig, out / "histograms.png")


def compute_spectra(rec: KnobRecord) -> list[dict]:
    """Spectral facts of every 2-D tensor at every snapshot (numpy, from the snapshots)."""
    rows = []
    mats = [t["name"] for t in rec.index["tensors"] if len(t["shape"]) == 2]
    for s in rec.snapshots:
        snap = rec.snapshot(s)
        for name in mats:
            if name in snap:
                rows.append({"step": s, "tensor": name, **knobs.spectrum(snap[name])})
    return rows


def plot_spectra(rec: KnobRecord, out: Path) -> tuple[Path | None, Path | None]:
    import matplotlib.pyplot as plt

    if not rec.snapshots:
        return None, None
    rows = compute_spectra(rec)
    jpath = out / "spectra.json"
    write_json_atomic(jpath, {
        "about": "per 2-D tensor and snapshot step: sigma_max (top singular value, weight "
                 "units), stable_rank (||W||_F^2 / ||W||_2^2), alpha (power-law exponent of the "
                 "ESD of W^T W: continuous MLE, xmin by KS distance; Martin & Mahoney 2021, "
                 "Clauset et al. 2009), xmin, ks, n_tail, alpha_se",
        "rows": rows})
    mats = sorted({r["tensor"] for r in rows}, key=lambda n: rec.names.index(n))
    roles = _roles(mats)
    colors = _layer_colors(rec)
    fig, axes = plt.subplots(3, len(roles), figsize=(3.2 * len(roles), 7.4), squeeze=False,
                             layout="constrained", sharex=True)
    what = [("alpha", "ESD tail exponent alpha"), ("sigma_max", f"sigma_max ({WEIGHT_UNITS})"),
            ("stable_rank", "stable rank ||W||_F^2 / ||W||_2^2")]
    for j, r in enumerate(roles):
        for i, (key, label) in enumerate(what):
            ax = axes[i, j]
            for name in [n for n in mats if role(n) == r]:
                pts = [(x["step"], x[key]) for x in rows if x["tensor"] == name]
                s, v = np.array(pts, dtype=float).T
                lay = tensor_layer(name)
                ax.plot(s, v, "o-", ms=2.5, color=colors[lay], label=lay)
            if key == "alpha":
                ax.axhspan(2, 6, color="C2", alpha=0.08, lw=0)
                ax.axhline(2, color="C2", lw=0.6, ls=":")
                ax.axhline(6, color="C2", lw=0.6, ls=":")
                ax.set_title(r)
            ax.set_xscale("symlog", linthresh=1)
            if i == 2:
                ax.set_xlabel("training step (symlog)")
            if j == 0:
                ax.set_ylabel(label)
    _figure_legend(fig, axes)
    n_min = min((r["n_tail"] for r in rows if r["n_tail"]), default=0)
    fig.suptitle("Spectra of the weight matrices at the snapshot steps (green band: alpha in "
                 f"[2, 6], WeightWatcher's well-trained range; tails of {n_min}+ eigenvalues)\n"
                 f"{_title(rec)}")
    return _save(fig, out / "spectra.png"), jpath


def _scale(w0: np.ndarray, w1: np.ndarray) -> float:
    """A tensor's own scale: RMS at the reference, or at the end if it started at zero."""
    r = float(np.sqrt(np.mean(np.square(w0, dtype=np.float64))))
    return r if r > 0 else float(np.sqrt(np.mean(np.square(w1, dtype=np.float64)))) or 1.0


def movers(rec: KnobRecord, top: int = 12) -> dict:
    """The knobs that moved most: ranked by |W_final - W_ref| in units of their tensor's
    RMS (an embedding initialised at scale 1 would otherwise outrank every matrix
    initialised at 1/sqrt(fan_in)). From the first and last snapshots when there are any,
    else among the sampled dials."""
    if len(rec.snapshots) >= 2:
        steps = list(rec.snapshots)
        first, last = rec.snapshot(steps[0]), rec.snapshot(steps[-1])
        names = [n for n in rec.names if n in first]
        absd = np.concatenate([np.abs(last[n] - first[n]).ravel() for n in names])
        deltas = np.concatenate([np.abs(last[n] - first[n]).ravel() / _scale(first[n], last[n])
                                 for n in names])
        owner = np.concatenate([np.full(first[n].size, i) for i, n in enumerate(names)])
        offset = np.concatenate([np.arange(first[n].size) for n in names])
        order = np.argsort(-deltas, kind="stable")
        k1 = max(1, deltas.size // 100)
        top1 = np.bincount(owner[order[:k1]], minlength=len(names))
        sizes = np.array([first[n].size for n in names])
        picks = [(names[owner[i]], int(offset[i]), float(absd[i]), float(deltas[i])) for i in order[:top]]
        all_snaps = [rec.snapshot(s) for s in steps]
        traj = {f"{n}[{i}]": [float(sn[n].ravel()[i]) for sn in all_snaps] for n, i, _, _ in picks}
        return {"source": "snapshots", "steps": steps, "top": picks, "trajectories": traj,
                "share_top1pct": dict(zip(names, (top1 / k1).tolist())),
                "share_knobs": dict(zip(names, (sizes / sizes.sum()).tolist())), "k1": int(k1)}
    d = np.abs(rec.knobs[-1] - rec.knobs[0])
    scale = {t: _scale(rec.knobs[0][[k for k, u in enumerate(rec.knob_tensor) if u == t]],
                       rec.knobs[-1][[k for k, u in enumerate(rec.knob_tensor) if u == t]])
             for t in set(rec.knob_tensor)}
    dn = d / np.array([scale[t] for t in rec.knob_tensor])
    order = np.argsort(-dn, kind="stable")[:top]
    picks = [(rec.knob_tensor[j], int(rec.knob_index[j]), float(d[j]), float(dn[j])) for j in order]
    traj = {f"{rec.knob_tensor[j]}[{int(rec.knob_index[j])}]": rec.knobs[:, j].tolist() for j in order}
    return {"source": "dials", "steps": rec.steps.tolist(), "top": picks, "trajectories": traj}


def _label(rec: KnobRecord, name: str, flat: int) -> str:
    shape = rec.tensor_info(name)["shape"]
    idx = ", ".join(str(int(i)) for i in np.unravel_index(flat, shape))
    return f"{short(name)}[{idx}]"


def plot_movers(rec: KnobRecord, out: Path) -> Path | None:
    import matplotlib.pyplot as plt

    mv = movers(rec)
    if not mv["top"]:
        return None
    two = mv["source"] == "snapshots"
    fig, axes = plt.subplots(1, 2 if two else 1, figsize=(11.5 if two else 6.5, 4.2), squeeze=False,
                             layout="constrained", gridspec_kw={"width_ratios": [1.25, 1] if two else [1]})
    ax = axes[0, 0]
    steps = np.array(mv["steps"], dtype=float)
    for k, (name, flat, delta, rel) in enumerate(mv["top"]):
        y = mv["trajectories"][f"{name}[{flat}]"]
        ax.plot(steps, y, marker="o" if two else None, ms=2.5, color=f"C{k % 10}",
                ls="-" if k < 10 else "--",
                label=f"{_label(rec, name, flat)}  |Δ| {delta:.2f} = {rel:.1f} RMS")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("training step (symlog)" + (": snapshot steps" if two else ""))
    ax.set_ylabel(f"knob value ({WEIGHT_UNITS})")
    where = "of all knobs" if two else f"of the {rec.knobs.shape[1]} sampled dials (no snapshots)"
    ax.set_title(f"The {len(mv['top'])} knobs that moved most {where},\n"
                 "in units of their tensor's RMS at the reference")
    ax.legend(frameon=False, fontsize=6.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if two:
        ax2 = axes[0, 1]
        names = [n for n in mv["share_top1pct"]]
        share = np.array([mv["share_top1pct"][n] for n in names])
        base = np.array([mv["share_knobs"][n] for n in names])
        keep = np.argsort(-np.maximum(share, base))[:14][::-1]
        y = np.arange(len(keep))
        ax2.barh(y + 0.2, 100 * share[keep], height=0.4, color="C3",
                 label=f"share of the top 1% movers ({mv['k1']:,} knobs)")
        ax2.barh(y - 0.2, 100 * base[keep], height=0.4, color="0.7", label="share of all knobs")
        ax2.set_yticks(y, [short(names[i]) for i in keep], fontsize=7.5)
        ax2.set_xlabel("% of knobs")
        ax2.set_title("Where the biggest movers live")
        ax2.legend(frameon=False, loc="lower right")
    fig.suptitle(f"Which knobs moved most: |W_final - {_ref_symbol(rec)}| / RMS(tensor)\n{_title(rec)}")
    return _save(fig, out / "movers.png")


def _gif_dials(rec: KnobRecord, n: int = 24) -> list[int]:
    """Dial columns for the GIF: one per matrix tensor in turn, then a second round."""
    mats = set(_matrices(rec))
    by_tensor: dict[str, list[int]] = {}
    for j, t in enumerate(rec.knob_tensor):
        if t in mats:
            by_tensor.setdefault(t, []).append(j)
    picks, r = [], 0
    while len(picks) < n and any(len(v) > r for v in by_tensor.values()):
        picks += [v[r] for v in by_tensor.values() if len(v) > r]
        r += 1
    return picks[:n]


def render_gif(rec: KnobRecord, out: Path, n_dials: int = 24, n_frames: int = 48, fps: int = 8) -> Path | None:
    """A grid of dials, one per sampled knob, the needle at the knob's value (full scale =
    the largest |value| that knob reaches), turning through the recorded steps."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    cols_j = _gif_dials(rec, n_dials)
    if not cols_j or len(rec.steps) < 2:
        return None
    # Frames at log-spaced steps: most of the motion happens early.
    want = np.unique(np.round(np.geomspace(1, rec.steps[-1], n_frames)))
    frames = sorted({0, *np.searchsorted(rec.steps, want).clip(0, len(rec.steps) - 1).tolist(),
                     len(rec.steps) - 1})
    rows_n, cols_n = _grid(len(cols_j), 6)
    fig, axes = plt.subplots(rows_n, cols_n, figsize=(1.45 * cols_n, 1.6 * rows_n + 0.5),
                             squeeze=False)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.86, wspace=0.15, hspace=0.45)
    sweep = np.deg2rad(135)  # the needle turns up to 135 degrees either way
    needles, texts = [], []
    theta = np.linspace(-sweep, sweep, 100)
    for ax, j in zip(axes.flat, cols_j):
        v = rec.knobs[:, j]
        full = float(np.max(np.abs(v))) or 1.0
        ax.plot(np.sin(theta), np.cos(theta), color="0.3", lw=1.2)
        for t in np.linspace(-sweep, sweep, 7):
            ax.plot([0.85 * np.sin(t), np.sin(t)], [0.85 * np.cos(t), np.cos(t)], color="0.3", lw=0.8)
        a0 = v[0] / full * sweep
        ax.plot([0, 0.8 * np.sin(a0)], [0, 0.8 * np.cos(a0)], color="0.7", lw=1.2)  # where it began
        (needle,) = ax.plot([], [], color="C3", lw=2.0)
        ax.plot(0, 0, "o", color="0.2", ms=3)
        ax.set_xlim(-1.15, 1.15)
        ax.set_ylim(-0.85, 1.15)
        ax.set_aspect("equal")
        ax.axis("off")
        name, flat = rec.knob_tensor[j], int(rec.knob_index[j])
        ax.set_title(_label(rec, name, flat), fontsize=6)
        texts.append(ax.text(0, -0.7, "", ha="center", fontsize=6.5, family="monospace"))
        needles.append((needle, v, full))
    for ax in axes.flat[len(cols_j):]:
        ax.axis("off")
    head = fig.suptitle("", fontsize=9)

    def draw(k):
        i = frames[k]
        for (needle, v, full), text in zip(needles, texts):
            a = v[i] / full * sweep
            needle.set_data([0, 0.8 * np.sin(a)], [0, 0.8 * np.cos(a)])
            text.set_text(f"{v[i]:+.3f}")
        head.set_text(f"{rec.path.name}: sampled knobs at step {int(rec.steps[i]):,} / "
                      f"{int(rec.steps[-1]):,}\n(grey: value at {_ref_words(rec)}; "
                      "full scale = the knob's largest |value|)")
        return [n for n, _, _ in needles] + texts + [head]

    anim = FuncAnimation(fig, draw, frames=len(frames), blit=False)
    path = out / "dials.gif"
    tmp = out / ".dials.tmp.gif"
    anim.save(tmp, writer=PillowWriter(fps=fps), dpi=90)
    tmp.replace(path)
    plt.close(fig)
    return path


def render(run: Path, out: Path | None = None, gif: bool = True) -> dict:
    """Every figure of a watched run; returns {"written": [paths], "skipped": [why]}."""
    import matplotlib

    matplotlib.use("Agg")
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


def headline(rec: KnobRecord, top: int = 5) -> list[str]:
    """A few lines for the terminal: the last recorded step's biggest movers."""
    last = {n: float(rec.tensor["rel_drift"][-1, j]) for j, n in enumerate(rec.names)}
    mats = _matrices(rec)
    ranked = sorted((n for n in mats if np.isfinite(last[n])), key=lambda n: -last[n])[:top]
    lines = [f"step {int(rec.steps[-1]):,}: whole model moved {rec.glob['rel_drift'][-1]:.3g} "
             f"(||Θ - Θ_ref|| / ||Θ_ref||), {100 * rec.glob['sign_flip'][-1]:.1f}% of knobs flipped sign"]
    lines += [f"  {n:<28s} relative drift {last[n]:.3g}" for n in ranked]
    return lines


# -- the live terminal view ---------------------------------------------------------------


_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values, width: int = 24) -> str:
    v = np.asarray(values, float)[-width:]
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return ""
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < 1e-12:
        return _SPARK[3] * len(v)
    return "".join(_SPARK[int((x - lo) / (hi - lo) * (len(_SPARK) - 1))] for x in v)


def _bar(x: float, lo: float = 1e-4, hi: float = 10.0, width: int = 28) -> str:
    """A log-scale bar from lo to hi."""
    if not np.isfinite(x) or x <= 0:
        return " " * width
    f = (math.log10(x) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    n = max(0.0, min(1.0, f)) * width
    full = int(n)
    part = " ▏▎▍▌▋▊▉"[int((n - full) * 8)] if full < width else ""
    return ("█" * full + part).ljust(width)


class LiveView:
    """What ``knobsim train --watch`` shows, redrawn each chunk: progress and loss, a bar
    per matrix for its relative drift (log scale), and a few dials with sparklines."""

    def __init__(self, cfg, n_dials: int = 6, max_rows: int = 16):
        self.cfg, self.n_dials, self.max_rows = cfg, n_dials, max_rows
        self.report = None
        self.losses: list[float] = []
        self.dial_hist: dict[int, list[float]] = {}
        self.dial_cols: list[int] | None = None

    def update(self, report) -> None:
        self.report = report
        self.losses.append(report.loss)
        w = report.watch
        if w is None:
            return
        if self.dial_cols is None:
            seen, cols = set(), []
            for j, t in enumerate(w["knob_tensor"]):
                if t.split(".")[-1][:2] == "w_" and t not in seen:  # one per weight matrix
                    seen.add(t)
                    cols.append(j)
            step = max(1, len(cols) // self.n_dials)
            self.dial_cols = cols[::step][: self.n_dials]
        for j in self.dial_cols:
            self.dial_hist.setdefault(j, []).extend(np.asarray(w["knobs"])[:, j].tolist())

    def __rich__(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        from knobsim.config import format_count

        r = self.report
        if r is None:
            return Text("compiling the first chunk ...")
        frac = r.step / r.steps
        head = Text.assemble(
            ("train ", "bold"), ("█" * int(30 * frac)).ljust(30, "·"),
            f" step {r.step:,}/{r.steps:,}  {format_count(r.tokens)} tok  "
            f"{format_count(r.tokens_per_s)} tok/s")
        loss = Text.assemble(("loss ", "bold"), f"{r.loss:.4f} ",
                             (sparkline(self.losses, 30), "cyan"),
                             f"   eval {r.eval_loss:.4f}" if r.eval_loss is not None else "")
        parts = [head, loss]
        w = r.watch
        if w is not None:
            g = {k: float(np.asarray(v)[-1]) for k, v in w["global"].items()}
            parts.append(Text(f"all knobs: drift ||Θ-Θ0||/||Θ0|| {g['rel_drift']:.3g}, "
                              f"update/weight {g['update_ratio']:.2g}, sign flips "
                              f"{100 * g['sign_flip']:.1f}%"))
            t = Table(box=None, pad_edge=False, header_style="bold")
            t.add_column("tensor")
            t.add_column("relative drift (log, 1e-4 .. 10)")
            t.add_column("drift", justify="right")
            t.add_column("upd/w", justify="right")
            names = w["names"]
            rows = [j for j, n in enumerate(names) if n.split(".")[-1][:2] in ("w_", "to")]
            rows.sort(key=lambda j: (layer_rank(tensor_layer(names[j])), _role_key(role(names[j]))))
            for j in rows[: self.max_rows]:
                d = float(np.asarray(w["tensor"]["rel_drift"])[-1, j])
                u = float(np.asarray(w["tensor"]["update_ratio"])[-1, j])
                style = "red" if u > 1e-2 else "green" if u > 1e-4 else "yellow"
                t.add_row(names[j], Text(_bar(d), style="magenta"), f"{d:.3g}", Text(f"{u:.1e}", style=style))
            parts.append(t)
            dt = Table(box=None, pad_edge=False, header_style="bold")
            dt.add_column("dial")
            dt.add_column("value", justify="right")
            dt.add_column("trajectory")
            for j in self.dial_cols or []:
                h = self.dial_hist.get(j, [])
                dt.add_row(f"{w['knob_tensor'][j]}[{int(w['knob_index'][j])}]",
                           f"{h[-1]:+.4f}" if h else "", Text(sparkline(h, 40), style="cyan"))
            parts.append(dt)
        return Group(*parts)

