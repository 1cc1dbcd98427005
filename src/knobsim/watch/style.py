"""What every figure of a watched run shares: names of tensors and roles, colours, style."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from knobsim.io.rundir import read_json
from knobsim.watch.recorder import KnobRecord, tensor_layer

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


def role_key(r: str) -> tuple:
    """Sort key of a role (see :func:`role`) in data-flow order: embedding, attention (qkv
    before o), MLP (in before out), the rest."""
    group = 0 if r.startswith("embed") else 1 if r.startswith("attn") else 2 if r.startswith("mlp") else 3
    first = 0 if ("qkv" in r or "w_in" in r) else 1
    return (group, first, r)



def _roles(names: list[str]) -> list[str]:
    return sorted({role(n) for n in names}, key=role_key)


def _positive(y):
    """Values for a log axis: zeros (the first step, whose lr is 0 in warmup) become gaps."""
    y = np.asarray(y, float).copy()
    y[~(y > 0)] = np.nan
    return y


def _legend_key(label: str) -> tuple:
    """Legend order: layers by depth (embed, block 0, 1, ..., the rest), then tensor roles in
    data-flow order, then the whole model, then reference lines (a rule of thumb) last."""
    if label.startswith("all knobs"):
        return (2,)
    if label.startswith("rule of thumb"):
        return (3,)
    if "." not in label:  # a layer: 'embed', 'block 3', 'hidden', 'out'
        return (0, layer_rank(label), label)
    return (1, role_key(label))


def _figure_legend(fig, axes, ncol: int = 8) -> None:
    """One legend for the whole figure, below the panels (labels deduplicated, ordered by
    depth, the whole model and reference lines last)."""
    seen = {}
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    if seen:
        labels = sorted(seen, key=_legend_key)
        fig.legend([seen[lab] for lab in labels], labels, loc="outside lower center",
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
    """The reference weights as mathtext (inside $...$): W_0, or W_pre in a fine-tune."""
    return "W_0" if rec.index.get("reference", "init") == "init" else r"W_{\mathrm{pre}}"


def _ref_words(rec: KnobRecord) -> str:
    return "initialisation" if rec.index.get("reference", "init") == "init" else "the pre-trained weights"


def files_only_backend() -> None:
    """Draw into files, never a window: Agg, unless a notebook's inline backend is in use
    (switching it would stop the notebook's own figures from showing). Every figure knobsim
    draws is saved and closed, so an inline backend shows none of them."""
    import matplotlib

    if not str(matplotlib.get_backend()).startswith("module://"):
        matplotlib.use("Agg")


def _style():
    import matplotlib as mpl

    return mpl.rc_context({
        # Sizes for a slide: the figures are at most ~12 inches wide, so a slide shows
        # them at ~100 px per inch and 10 pt is ~14 px there.
        "font.size": 10.5, "axes.titlesize": 11, "axes.labelsize": 10.5, "legend.fontsize": 10,
        "xtick.labelsize": 9.5, "ytick.labelsize": 9.5, "figure.titlesize": 12,
        "axes.spines.top": False,
        "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.25, "savefig.dpi": DPI,
        "figure.dpi": DPI, "lines.linewidth": 1.2,
    })


def _tidy_log_axis(axis, plain: bool = False) -> None:
    """Tick labels of a log (or symlog) axis that never crowd: decades only, and 2 and 5
    times a decade only when fewer than two decades are in view (matplotlib would label
    every minor tick there, 2x10^0 3x10^0 4x10^0 ... on top of each other). ``plain``
    writes 1, 10, 100 (training steps) instead of 10^0, 10^1, 10^2."""
    from matplotlib.ticker import FuncFormatter

    def text(v: float) -> str:
        if v == 0:
            return "0"
        if plain:
            return f"{v:,.0f}" if v >= 1 else f"{v:g}"
        e = math.floor(math.log10(abs(v)) + 1e-9)
        m = v / 10.0**e
        return rf"$10^{{{e}}}$" if abs(m - 1) < 1e-6 else rf"${m:.0f}\times10^{{{e}}}$"

    def minor(v: float, pos=None) -> str:
        lo, hi = sorted(axis.get_view_interval())
        lo = max(lo, 1e-300)
        decades = math.floor(math.log10(hi) + 1e-9) - math.ceil(math.log10(lo) - 1e-9) + 1
        if v <= 0 or decades >= 2:
            return ""
        m = v / 10.0 ** math.floor(math.log10(v) + 1e-9)
        return text(v) if round(m, 6) in (2.0, 5.0) else ""

    axis.set_major_formatter(FuncFormatter(lambda v, pos=None: text(v)))
    axis.set_minor_formatter(FuncFormatter(minor))


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

def index_text(flat: int, shape) -> str:
    """A knob's flat index as its [row, column] (every dimension), as every view writes it."""
    return "[" + ", ".join(str(int(i)) for i in np.unravel_index(int(flat), tuple(shape))) + "]"


def _label(rec: KnobRecord, name: str, flat: int) -> str:
    return f"{short(name)}{index_text(flat, rec.tensor_info(name)['shape'])}"
