"""What the terminal shows of a watched run: the headline after `knobsim watch`, and the
live view of `knobsim train --watch`, fed by the host loop's ChunkReport."""

from __future__ import annotations

import math

import numpy as np

from knobsim.watch.recorder import KnobRecord, tensor_layer
from knobsim.watch.style import (
    role,
    layer_rank,
    _matrices,
    _role_key,
)


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
