"""Figures from run directories and results tables: one style, log-log for power laws.

Plots never train and never fit on their own: they read tables (knobsim.scaling.sweep.read_rows,
record.read_metrics) and draw fits made by knobsim.scaling.fit. Every figure goes through
:func:`figure` and :func:`save`, so all of them share fonts, sizes and resolution.

    with style():
        fig, ax = figure()
        points_by_n(ax, rows)                 # mean +- sd over seeds, one marker per size
        fit_band(ax, fit, n_grid)             # the law and its 95% bootstrap band
        loglog(ax, "knobs N (total)", "eval loss - floor (nats/char)")
        save(fig, out / "l_of_n.png")
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

# Sizes for a single-column figure as papers print them (inches) and a readable font.
WIDTH, HEIGHT = 6.4, 4.4
DPI = 150
RC = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8.5,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "savefig.dpi": DPI,
    "figure.dpi": DPI,
    "lines.linewidth": 1.6,
    "lines.markersize": 5,
}
# A colour-blind-safe cycle (Okabe & Ito 2008).
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")


def _mpl():
    import matplotlib

    from knobsim.watch.style import files_only_backend

    files_only_backend()  # files only, never a window; a notebook keeps its inline backend
    import matplotlib.pyplot as plt

    return matplotlib, plt


@contextlib.contextmanager
def style():
    matplotlib, plt = _mpl()
    with matplotlib.rc_context(RC):
        yield plt


def figure(ncols: int = 1, nrows: int = 1, width: float | None = None, height: float | None = None,
           **kw):
    _, plt = _mpl()
    w = width or WIDTH * (1 if ncols == 1 else 0.75 * ncols)
    h = height or HEIGHT * (1 if nrows == 1 else 0.8 * nrows)
    with plt.rc_context(RC):
        fig, ax = plt.subplots(nrows, ncols, figsize=(w, h), layout="constrained", **kw)
    return fig, ax


def save(fig, path: Path) -> Path:
    _, plt = _mpl()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for ax in fig.axes:  # limits are final now: label short log axes with plain numbers
        if ax.get_yscale() == "log":
            plain_log_ticks(ax.yaxis)
        if ax.get_xscale() == "log":
            plain_log_ticks(ax.xaxis)
    with plt.rc_context(RC):
        fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def loglog(ax, xlabel: str, ylabel: str, title: str | None = None) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.08)


def plain_log_ticks(axis) -> None:
    """Log-axis tick labels as plain numbers (0.9, 1.5, 2) when the axis spans less than
    about two decades; matplotlib's default writes 2x10^0 on the minor ticks. An axis whose
    ticks a figure chose itself (a FixedLocator) is left as it is."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator

    lo, hi = sorted(axis.get_view_interval())
    if lo <= 0 or hi / lo > 100 or isinstance(axis.get_major_locator(), FixedLocator):
        return
    fmt = FuncFormatter(lambda v, _: plain(v))
    subs = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0) if hi / lo <= 10 else (1.0, 2.0, 5.0)
    axis.set_major_formatter(fmt)
    axis.set_minor_locator(LogLocator(subs=subs))
    axis.set_minor_formatter(fmt)


def plain(v: float) -> str:
    """A tick label: 0.7, 1.5, 300, 5,000; 2×10⁶ beyond 10^4 (mathtext)."""
    if v <= 0:
        return ""
    k = int(np.floor(np.log10(v) + 1e-9))
    if -3 <= k < 4:
        return f"{round(v):,}" if v >= 1 and abs(v - round(v)) < 1e-9 else f"{v:.3g}"
    m = v / 10 ** k
    m_txt = f"{m:.2g}"
    return f"$10^{{{k}}}$" if m_txt == "1" else rf"${m_txt}\times10^{{{k}}}$"


def color(i: int) -> str:
    return COLORS[i % len(COLORS)]


# -- tables ------------------------------------------------------------------------------


def seed_stats(rows: Iterable[dict], x: str = "n_params_total", y: str = "final_eval_loss"):
    """Group rows by x: (x (K,), mean (K,), sd (K,), count (K,)); sd is 0 for one seed."""
    groups: dict = defaultdict(list)
    for r in rows:
        if r.get(y) is not None and np.isfinite(r[y]):
            groups[r[x]].append(r[y])
    xs = np.array(sorted(groups), dtype=float)
    vals = [np.asarray(groups[k], dtype=float) for k in sorted(groups)]
    mean = np.array([v.mean() for v in vals])
    sd = np.array([v.std(ddof=1) if v.size > 1 else 0.0 for v in vals])
    n = np.array([v.size for v in vals])
    return xs, mean, sd, n


def points_by_n(ax, rows, *, x="n_params_total", y="final_eval_loss", offset: float = 0.0,
                color_=None, label: str | None = "runs (mean ± sd over seeds)", marker="o"):
    """Mean over seeds with an error bar of one standard deviation (y - offset)."""
    xs, mean, sd, n = seed_stats(rows, x, y)
    ax.errorbar(xs, mean - offset, yerr=sd, fmt=marker, color=color_ or COLORS[0], capsize=3,
                ms=5, lw=1.2, label=label, zorder=3)
    return xs, mean, sd, n


def points_left_out(ax, rows, *, offset: float = 0.0, label: str | None = "left out of the fits"):
    """Runs drawn but not fitted: hollow grey markers, mean ± sd over seeds (y - offset)."""
    if not rows:
        return
    xs, mean, sd, _ = seed_stats(rows)
    ax.errorbar(xs, mean - offset, yerr=sd, fmt="o", mfc="white", color="0.45", capsize=3,
                ms=5, lw=1.0, zorder=3, label=label)


# -- fits --------------------------------------------------------------------------------


def law_band(fit, x: np.ndarray, offset: float = 0.0, q=(2.5, 97.5)):
    """(center, lo, hi) of a fitted L(N) or L(D) at x: the fit and the bootstrap band of
    the law's prediction (pointwise percentiles over resampled fits), minus ``offset``."""
    x = np.asarray(x, dtype=float)
    center = np.asarray(fit.predict(n=x, d=x), dtype=float) - offset
    boot = getattr(fit, "boot", None)
    if boot is None or not np.isfinite(boot).any():
        return center, None, None
    E, A, alpha, B, beta = (boot[:, j] for j in range(5))
    coef, expo = (A, alpha) if fit.law == "n" else (B, beta)
    ok = np.isfinite(E) & np.isfinite(coef) & np.isfinite(expo)
    if ok.sum() < 10:
        return center, None, None
    with np.errstate(all="ignore"):
        pred = E[ok, None] + coef[ok, None] * x[None, :] ** -expo[ok, None] - offset
    lo, hi = np.nanpercentile(pred, q, axis=0)
    return center, lo, hi


def fit_band(ax, fit, x: np.ndarray, *, offset: float = 0.0, color_=None, label=None,
             ls="-", band=True, band_alpha=0.18):
    center, lo, hi = law_band(fit, x, offset)
    c = color_ or COLORS[1]
    ax.plot(x, center, ls=ls, color=c, label=label, zorder=2)
    if band and lo is not None:
        ax.fill_between(x, np.maximum(lo, 1e-12), hi, color=c, alpha=band_alpha, lw=0, zorder=1)
    return center, lo, hi


def fmt_ci(v: float, ci: Sequence[float] | None, digits: int = 3) -> str:
    if ci is None:
        return f"{v:.{digits}g}"
    return f"{v:.{digits}g} [{ci[0]:.{digits}g}, {ci[1]:.{digits}g}]"


def geomgrid(lo: float, hi: float, k: int = 200, pad: float = 1.0) -> np.ndarray:
    return np.geomspace(lo / pad, hi * pad, k)
