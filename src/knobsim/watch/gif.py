"""dials.gif: a grid of dials (sampled knobs) turning through training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knobsim.watch.recorder import KnobRecord, tensor_layer
from knobsim.watch.style import (
    index_text,
    layer_rank,
    role,
    short,
    role_key,
    _matrices,
    _ref_words,
    _grid,
)


def _gif_dials(rec: KnobRecord, n: int = 12) -> list[int]:
    """Dial columns for the GIF: one per matrix tensor in turn (embedding first, then the
    blocks in depth and data-flow order), then a second round."""
    mats = set(_matrices(rec))
    by_tensor: dict[str, list[int]] = {}
    order = sorted(range(len(rec.knob_tensor)), key=lambda j: (
        layer_rank(tensor_layer(rec.knob_tensor[j])), role_key(role(rec.knob_tensor[j])), j))
    for j in order:
        t = rec.knob_tensor[j]
        if t in mats:
            by_tensor.setdefault(t, []).append(j)
    picks, r = [], 0
    while len(picks) < n and any(len(v) > r for v in by_tensor.values()):
        picks += [v[r] for v in by_tensor.values() if len(v) > r]
        r += 1
    return picks[:n]


# Sized for a slide and for the README (experiments/make_figures.py shrinks it to 560 px
# wide): 12 dials, 4 x 3, 700 px wide at 100 dpi; 11 pt text is 15 px here, 12 px in the
# README's copy.
GIF_DPI = 100
GIF_COLS = 4
FONT = 11


def gif_figure(rec: KnobRecord, n_dials: int = 12):
    """The GIF's figure and ``draw(i)``, which sets every needle to record row i; (None,
    None) when there is nothing to draw."""
    import matplotlib.pyplot as plt

    cols_j = _gif_dials(rec, n_dials)
    if not cols_j or len(rec.steps) < 2:
        return None, None
    rows_n, cols_n = _grid(len(cols_j), GIF_COLS)
    head_in = 0.8
    fig, axes = plt.subplots(rows_n, cols_n, figsize=(1.75 * cols_n, 1.95 * rows_n + head_in),
                             squeeze=False, dpi=GIF_DPI)
    top = 1 - head_in / fig.get_figheight()
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=top - 0.06, wspace=0.1, hspace=0.55)
    sweep = np.deg2rad(135)  # the needle turns up to 135 degrees either way
    needles, texts = [], []
    theta = np.linspace(-sweep, sweep, 100)
    for ax, j in zip(axes.flat, cols_j):
        v = rec.knobs[:, j]
        full = float(np.max(np.abs(v))) or 1.0
        ax.plot(np.sin(theta), np.cos(theta), color="0.3", lw=1.4)
        for t in np.linspace(-sweep, sweep, 7):
            ax.plot([0.85 * np.sin(t), np.sin(t)], [0.85 * np.cos(t), np.cos(t)], color="0.3", lw=1.0)
        a0 = v[0] / full * sweep
        ax.plot([0, 0.8 * np.sin(a0)], [0, 0.8 * np.cos(a0)], color="0.65", lw=2.0)  # where it began
        (needle,) = ax.plot([], [], color="C3", lw=2.6)
        (hub,) = ax.plot(0, 0, "o", color="0.2", ms=4)  # over the needle: repainted with it, see blit_frames
        ax.set_xlim(-1.15, 1.15)
        ax.set_ylim(-1.02, 1.12)
        ax.set_aspect("equal")
        ax.axis("off")
        name, flat = rec.knob_tensor[j], int(rec.knob_index[j])
        # Two lines, tensor then [row, column]: a one-line label would need a smaller font.
        ax.set_title(f"{short(name)}\n{index_text(flat, rec.tensor_info(name)['shape'])}",
                     fontsize=FONT, linespacing=1.1, pad=2)
        texts.append(ax.text(0, -0.86, "", ha="center", va="center", fontsize=FONT,
                             family="monospace"))
        needles.append((needle, v, full, hub))
    for ax in axes.flat[len(cols_j):]:
        ax.axis("off")
    head = fig.text(0.5, 1 - 0.1 / fig.get_figheight(), "", ha="center", va="top",
                    fontsize=FONT + 1, linespacing=1.3)
    last = int(rec.steps[-1])

    def draw(i):
        """Set every needle to record row i. Returns the artists that change from frame to
        frame, in the order a full draw paints them (each dial's needle, its hub, its value;
        the heading last)."""
        for (needle, v, full, _), text in zip(needles, texts):
            a = v[i] / full * sweep
            needle.set_data([0, 0.8 * np.sin(a)], [0, 0.8 * np.cos(a)])
            text.set_text(f"{v[i]:+.3f}")
        head.set_text(f"{rec.path.name}: sampled knobs at step {int(rec.steps[i]):,} / {last:,}\n"
                      f"grey: value at {_ref_words(rec)}; red: now\n"
                      "full scale: the knob's largest |value| (weight units)")
        return [a for (needle, _, _, hub), text in zip(needles, texts) for a in (needle, hub, text)] + [head]

    return fig, draw


def blit_frames(fig, draw, rows: list[int]) -> list:
    """The frames of record rows ``rows`` as PIL images, blitted: the dials' faces, ticks and
    titles are painted once; each frame restores them and paints only what moves (needles,
    hubs, values, heading), in the order a full draw paints them, so every frame has the
    pixels of a full redraw (tests/test_watch.py compares them). Redrawing the whole figure
    per frame, as matplotlib's FuncAnimation does, took 4-6 s for the 20 frames of a tiny
    run; this takes ~1."""
    from PIL import Image

    for a in draw(rows[0]):
        a.set_animated(True)  # left out of the full draw below
    canvas = fig.canvas
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    images = []
    for i in rows:
        canvas.restore_region(background)
        for a in draw(i):
            fig.draw_artist(a)
        images.append(Image.frombuffer("RGBA", canvas.get_width_height(), bytes(canvas.buffer_rgba()),
                                       "raw", "RGBA", 0, 1))
    return images


def render_gif(rec: KnobRecord, out: Path, n_dials: int = 12, n_frames: int = 48, fps: int = 8) -> Path | None:
    """A grid of dials, one per sampled knob, the needle at the knob's value (full scale =
    the largest |value| that knob reaches), turning through the recorded steps."""
    import matplotlib.pyplot as plt

    fig, draw = gif_figure(rec, n_dials)
    if fig is None:
        return None
    # Frames at log-spaced steps: most of the motion happens early.
    want = np.unique(np.round(np.geomspace(1, rec.steps[-1], n_frames)))
    frames = sorted({0, *np.searchsorted(rec.steps, want).clip(0, len(rec.steps) - 1).tolist(),
                     len(rec.steps) - 1})
    try:
        images = blit_frames(fig, draw, frames)
    finally:
        plt.close(fig)
    # As matplotlib's PillowWriter writes a GIF: opaque frames reach the palette through
    # RGB, which keeps white white (the file is byte for byte the one it wrote, checked).
    images = [im if im.getextrema()[3][0] < 255 else im.convert("RGB") for im in images]
    path = out / "dials.gif"
    tmp = out / ".dials.tmp.gif"
    images[0].save(tmp, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    tmp.replace(path)
    return path
