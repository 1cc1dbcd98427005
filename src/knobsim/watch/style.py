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

def _label(rec: KnobRecord, name: str, flat: int) -> str:
    shape = rec.tensor_info(name)["shape"]
    idx = ", ".join(str(int(i)) for i in np.unravel_index(flat, shape))
    return f"{short(name)}[{idx}]"
