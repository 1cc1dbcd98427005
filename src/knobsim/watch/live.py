"""What the terminal shows of a watched run: the headline after `knobsim watch`, and the
live view of `knobsim train --watch`, fed by the host loop's ChunkReport."""

from __future__ import annotations

import math

import numpy as np

from knobsim.watch.recorder import KnobRecord, tensor_layer
from knobsim.watch.style import (
    index_text,
    role,
    layer_rank,
    _matrices,
    role_key,
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


def _duration(s: float) -> str:
    s = max(0.0, s)
    if s < 60:
        return f"{s:.0f} s"
    m, s = divmod(int(round(s)), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


class LiveView:
    """What ``knobsim train --watch`` shows, redrawn each chunk: progress, elapsed time and
    ETA, loss, a bar per matrix for its relative drift (log scale), and a few dials with
    sparklines on a fixed time axis (the whole run) and a printed value range."""

    def __init__(self, cfg, n_dials: int = 6, max_rows: int = 16, spark_width: int = 32,
                 clock=None):
        import time

        from knobsim.models import sizing

        self.cfg, self.n_dials, self.max_rows, self.spark_width = cfg, n_dials, max_rows, spark_width
        self.clock = clock or time.monotonic
        self.t0 = self.clock()
        self.first: tuple[float, int] | None = None  # (time, step) of the first report
        self.last_t = self.t0
        # Shapes from jax.eval_shape (nothing allocated), to write dials as [row, column]
        # like the figures and finetune.json do.
        self.shapes = sizing.param_shapes(cfg.model.arch, cfg.model.shape)
        self.report = None
        self.losses: list[float] = []
        self.dial_steps: list[int] = []
        self.dial_hist: dict[int, list[float]] = {}
        self.dial_cols: list[int] | None = None

    def update(self, report) -> None:
        now = self.clock()
        if self.first is None:
            self.first = (now, report.step)
        self.last_t = now
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
        self.dial_steps.extend(int(s) for s in np.asarray(w["steps"]))
        for j in self.dial_cols:
            self.dial_hist.setdefault(j, []).extend(np.asarray(w["knobs"])[:, j].tolist())

    def eta(self) -> float | None:
        """Seconds left, from the pace since the first chunk (which includes compiling)."""
        r = self.report
        if r is None or self.first is None or r.step <= self.first[1] or self.last_t <= self.first[0]:
            return None
        pace = (self.last_t - self.first[0]) / (r.step - self.first[1])  # seconds per step
        return max(0.0, (r.steps - r.step) * pace - (self.clock() - self.last_t))

    def dial_sparkline(self, j: int) -> str:
        """Dial j's values on a fixed time axis (column c: the last value recorded by step
        (c + 1) / width of the run) and a y axis from its lowest to its highest value so far
        (printed beside it), so a frame only redraws where something new is known."""
        h = self.dial_hist.get(j, [])
        if not h or self.report is None:
            return ""
        steps = np.asarray(self.dial_steps[-len(h):])
        v = np.asarray(h, float)
        total = self.report.steps
        n = round(self.spark_width * self.report.step / total)
        lo, hi = float(v.min()), float(v.max())
        out = []
        for c in range(n):
            k = int(np.searchsorted(steps, (c + 1) * total / self.spark_width, side="right")) - 1
            x = v[max(k, 0)]
            out.append(_SPARK[3] if hi - lo < 1e-12 else
                       _SPARK[int((x - lo) / (hi - lo) * (len(_SPARK) - 1))])
        return "".join(out)

    def __rich__(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        from knobsim.config import format_count

        r = self.report
        elapsed = self.clock() - self.t0
        if r is None:
            c, m = self.cfg, self.cfg.model
            return Text(f"compiling: {m.arch}, {m.n_params_total:,} knobs, {c.train.steps:,} steps "
                        f"in chunks of {c.train.chunk:,} ... {_duration(elapsed)}\n"
                        "(XLA compiles the chunk once; progress, ETA, drift and dials follow its "
                        "first run)")
        frac = r.step / r.steps
        eta = self.eta()
        head = Text.assemble(
            ("train ", "bold"), ("█" * int(30 * frac)).ljust(30, "·"),
            f" step {r.step:,}/{r.steps:,}  {format_count(r.tokens)} tok  "
            f"{format_count(r.tokens_per_s)} tok/s  {_duration(elapsed)} elapsed, ",
            ("ETA " + ("--" if eta is None else _duration(eta)), "bold"))
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
            rows.sort(key=lambda j: (layer_rank(tensor_layer(names[j])), role_key(role(names[j]))))
            for j in rows[: self.max_rows]:
                d = float(np.asarray(w["tensor"]["rel_drift"])[-1, j])
                u = float(np.asarray(w["tensor"]["update_ratio"])[-1, j])
                style = "red" if u > 1e-2 else "green" if u > 1e-4 else "yellow"
                t.add_row(names[j], Text(_bar(d), style="magenta"), f"{d:.3g}", Text(f"{u:.1e}", style=style))
            parts.append(t)
            dt = Table(box=None, pad_edge=False, header_style="bold")
            dt.add_column("dial")
            dt.add_column("value", justify="right")
            dt.add_column("low .. high so far", justify="right")
            dt.add_column(f"trajectory: step 0 .. {r.steps:,} across")
            for j in self.dial_cols or []:
                h = self.dial_hist.get(j, [])
                name = w["knob_tensor"][j]
                flat = int(w["knob_index"][j])
                label = f"{name}{index_text(flat, self.shapes[name])}" if name in self.shapes else f"{name}[{flat}]"
                dt.add_row(label, f"{h[-1]:+.4f}" if h else "",
                           f"{min(h):+.3f} .. {max(h):+.3f}" if h else "",
                           Text(self.dial_sparkline(j).ljust(self.spark_width, "·"), style="cyan"))
            parts.append(dt)
        return Group(*parts)
