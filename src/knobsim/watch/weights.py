"""Figures of the weights themselves, from a run's snapshots: histograms, spectra, movers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knobsim.io.rundir import write_json_atomic
from knobsim.watch import stats as knobs
from knobsim.watch.recorder import KnobRecord, tensor_layer
from knobsim.watch.style import (
    _label,
    WEIGHT_UNITS,
    role,
    short,
    _layers,
    _matrices,
    role_key,
    _roles,
    _figure_legend,
    _layer_colors,
    _ref_symbol,
    _ref_words,
    _save,
    _tidy_log_axis,
    _title,
)


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
    return [sorted((n for n in mats if tensor_layer(n) == lay), key=lambda n: role_key(role(n)))
            for lay in layers]


def plot_histograms(rec: KnobRecord, out: Path) -> Path | None:
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import MaxNLocator

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
            # Decades only, at most 4 labelled: a log axis spanning less than two decades
            # otherwise labels its minor ticks (2x10^-1, 3x10^-1, ...) on top of each other.
            _tidy_log_axis(ax.yaxis)
            ax.xaxis.set_major_locator(MaxNLocator(4, symmetric=True))
            ax.set_title(short(name))
    fig.supxlabel(f"knob value ({WEIGHT_UNITS})", fontsize="medium")
    fig.supylabel("density (per weight unit, log scale)", fontsize="medium")
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
    import textwrap

    mats = sorted({r["tensor"] for r in rows}, key=lambda n: rec.names.index(n))
    roles = _roles(mats)
    colors = _layer_colors(rec)
    fitted = [r for r in rows if np.isfinite(r["alpha"])]
    what = [("sigma_max", rf"$\sigma_{{\max}}$ ({WEIGHT_UNITS})"),
            ("stable_rank", r"stable rank $\|W\|_F^2 \,/\, \|W\|_2^2$")]
    if fitted:  # no alpha row when no matrix has the eigenvalues a tail fit needs
        what.insert(0, ("alpha", r"ESD tail exponent $\alpha$"))
    width = max(5.0, min(3.2, 12.5 / len(roles)) * len(roles))
    fig, axes = plt.subplots(len(what), len(roles), figsize=(width, 2.5 * len(what) + 0.6),
                             squeeze=False, layout="constrained", sharex=True)
    for j, r in enumerate(roles):
        for i, (key, label) in enumerate(what):
            ax = axes[i, j]
            drawn = False
            for name in [n for n in mats if role(n) == r]:
                pts = [(x["step"], x[key]) for x in rows if x["tensor"] == name]
                s, v = np.array(pts, dtype=float).T
                if np.isfinite(v).any():
                    lay = tensor_layer(name)
                    ax.plot(s, v, "o-", ms=3, color=colors[lay], label=lay)
                    drawn = True
            if key == "alpha" and drawn:
                ax.axhspan(2, 6, color="C2", alpha=0.08, lw=0)
                ax.axhline(2, color="C2", lw=0.6, ls=":")
                ax.axhline(6, color="C2", lw=0.6, ls=":")
            elif not drawn:
                ax.text(0.5, 0.5, f"not fitted:\nfewer than {knobs.MIN_TAIL}\neigenvalues",
                        transform=ax.transAxes, ha="center", va="center", color="0.4")
                ax.set_yticks([])
            if i == 0:
                ax.set_title(r)
            ax.set_xscale("symlog", linthresh=1)
            _tidy_log_axis(ax.xaxis, plain=True)
            if i == len(what) - 1:
                ax.set_xlabel("training step (symlog)")
            if j == 0:
                ax.set_ylabel(label)
    _figure_legend(fig, axes)
    if fitted:
        n_min = min(r["n_tail"] for r in fitted)
        note = (r"green band: $\alpha$ in [2, 6], WeightWatcher's well-trained range; "
                rf"$\alpha$ fitted on tails of {n_min} or more eigenvalues")
    else:
        note = (r"no ESD tail exponent $\alpha$: every matrix has fewer than "
                f"{knobs.MIN_TAIL} nonzero eigenvalues, too few for a tail fit")
    wrap = max(40, int(width * 11))
    fig.suptitle("Spectra of the weight matrices at the snapshot steps\n"
                 + "\n".join(textwrap.wrap(note, wrap)) + f"\n{_title(rec)}")
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




def plot_movers(rec: KnobRecord, out: Path) -> Path | None:
    import matplotlib.pyplot as plt

    mv = movers(rec)
    if not mv["top"]:
        return None
    two = mv["source"] == "snapshots"
    fig, axes = plt.subplots(1, 2 if two else 1, figsize=(12.5 if two else 8.0, 5.0), squeeze=False,
                             layout="constrained", gridspec_kw={"width_ratios": [1.5, 1] if two else [1]})
    ax = axes[0, 0]
    steps = np.array(mv["steps"], dtype=float)
    for k, (name, flat, delta, rel) in enumerate(mv["top"]):
        y = mv["trajectories"][f"{name}[{flat}]"]
        ax.plot(steps, y, marker="o" if two else None, ms=2.5, color=f"C{k % 10}",
                ls="-" if k < 10 else "--",
                label=rf"{_label(rec, name, flat)}: $|\Delta|$ {delta:.2f} = {rel:.1f} RMS")
    ax.set_xscale("symlog", linthresh=1)
    _tidy_log_axis(ax.xaxis, plain=True)
    ax.set_xlabel("training step (symlog)" + (": snapshot steps" if two else ""))
    ax.set_ylabel(f"knob value ({WEIGHT_UNITS})")
    where = "of all knobs" if two else f"of the {rec.knobs.shape[1]} sampled dials (no snapshots)"
    # Values are drawn in weight units; only the ranking divides by the tensor's RMS (an
    # embedding at scale 1 would otherwise outrank every matrix at 1/sqrt(fan_in)).
    ax.set_title(f"The {len(mv['top'])} knobs that moved most {where},\n"
                 rf"ranked by $|\Delta|$ / RMS of their tensor at {_ref_words(rec)}")
    ax.legend(frameon=False, fontsize=8.5, loc="center left", bbox_to_anchor=(1.0, 0.5),
              title=rf"$|\Delta|$ in {WEIGHT_UNITS} = in RMS of its tensor", title_fontsize=8.5)
    if two:
        ax2 = axes[0, 1]
        names = [n for n in mv["share_top1pct"]]
        share = np.array([mv["share_top1pct"][n] for n in names])
        base = np.array([mv["share_knobs"][n] for n in names])
        keep = np.argsort(-np.maximum(share, base))[:14][::-1]
        y = np.arange(len(keep))
        ax2.barh(y + 0.2, 100 * share[keep], height=0.4, color="C3",
                 label=f"share of the top 1% movers ({mv['k1']:,} knob{'s' if mv['k1'] != 1 else ''})")
        ax2.barh(y - 0.2, 100 * base[keep], height=0.4, color="0.7", label="share of all knobs")
        ax2.set_yticks(y, [short(names[i]) for i in keep])
        ax2.set_xlabel("% of knobs", labelpad=2)
        ax2.set_title("Where the biggest movers live")
        ax2.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1)
    fig.suptitle(rf"Which knobs moved most, ranked by $|W_{{\mathrm{{final}}}} - {_ref_symbol(rec)}|$"
                 f" / RMS(tensor)\n{_title(rec)}")
    return _save(fig, out / "movers.png")
