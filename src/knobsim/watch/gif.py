"""dials.gif: a grid of dials (sampled knobs) turning through training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knobsim.watch.recorder import KnobRecord
from knobsim.watch.style import (
    _label,
    _matrices,
    _ref_words,
    _grid,
)


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
