"""Learning curves: loss against training compute for every size, and the compute frontier.

    python experiments/learning_curves.py --quick    # reuses scaling_params --quick runs: ~4 min alone, 20 s after it
    python experiments/learning_curves.py            # reuses scaling_params' full runs: ~3 h alone

In the style of Kaplan et al. (2020), Figure 1 (left): each size's loss as training goes
on, plotted against the compute spent so far, C = 6 N D (D = tokens seen; attention FLOPs
left out), and the lower envelope over sizes, the compute-efficient frontier, with a fit
L(C) = E + B / C^beta. Right: which size sits on the frontier at each compute.

The curves are each run's per-step training loss, averaged in log-spaced bins of compute.
Every step samples fresh text, so the loss of a batch before the update is an unbiased
estimate of the loss on unseen text: the train loss here is a test loss, at every step.
Seed 0 only, so the curves are single runs.

By default it reads (and if needed trains) the sweep of scaling_params in the same mode,
beside --out (OUT/../scaling_params[-quick]/sweep): both run the L(N) sweep of
_common.LN_SWEEP, so running both costs one sweep. --runs DIR reads another sweep's results.csv and run directories.

--table RESULTS_CSV draws from a finished sweep's table and the curves.csv beside it (e.g.
the committed experiments/results/scaling_params/), training and reading no run directory.

Writes to --out (default experiments/out/learning_curves[-quick]):
  learning_curves.png     loss vs compute, all sizes, frontier and its fit | N on the frontier
  curves.csv              the drawn curves (n_params_total, seed, warmup_steps, compute, loss);
                          not with --table, which reads them
  summary.json            frontier fit (beta, its interval, E), frontier sizes by compute
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple

import numpy as np

import _common as C
from knobsim.scaling import plots as P
from knobsim.io import rundir as record
from knobsim import scaling
from knobsim.scaling import sweep as S

MODES = {  # the runs are the L(N) sweep's (_common.LN_SWEEP); here: bootstrap resamples
    "full": dict(boot=200),
    "quick": dict(boot=200),
    "tiny": dict(boot=6),
}
BINS_PER_DECADE = 12
WARMUP_SKIP = 2.0  # the frontier fit starts after the smallest run's first 2 x warmup steps


def curve(run_dir: Path, n: int):
    """(C (K,), loss (K,)) of one run: train loss averaged in log-spaced compute bins."""
    rows = [r for r in record.read_metrics(run_dir) if "loss" in r]
    c = 6.0 * n * np.array([r["tokens"] for r in rows], float)
    loss = np.array([r["loss"] for r in rows], float)
    if c.size < 2:
        return c, loss
    edges = np.logspace(np.log10(c.min()), np.log10(c.max()) + 1e-9,
                        max(2, int(BINS_PER_DECADE * np.log10(c.max() / c.min())) + 1))
    idx = np.digitize(c, edges) - 1
    keep = [i for i in range(len(edges) - 1) if np.any(idx == i)]
    if len(keep) < 2:  # a very short run: its steps as they are
        return c, loss
    return (np.array([np.exp(np.log(c[idx == i]).mean()) for i in keep]),
            np.array([loss[idx == i].mean() for i in keep]))


class Frontier(NamedTuple):
    grid: np.ndarray  # (G,) compute C, log-spaced over every run's range
    best: np.ndarray  # (G,) the lowest loss any run reached with at most C FLOP
    who: np.ndarray  # (G,) N of that run
    ok: np.ndarray  # (G,) where some run reached C


def frontier(curves: dict, grid: np.ndarray) -> Frontier:
    """The compute-efficient frontier on a compute grid: the lowest loss any run reached
    with at most C FLOP, and the size of that run. Each curve is interpolated in log C
    within its own range; a run's loss at C' <= C counts at C (stopping there costs less),
    so the frontier never rises."""
    best = np.full(grid.size, np.inf)
    who = np.zeros(grid.size)
    for n, (c, loss) in curves.items():
        if c.size < 2:
            continue
        inside = (grid >= c.min()) & (grid <= c.max())
        val = np.interp(np.log(grid[inside]), np.log(c), loss)
        better = val < best[inside]
        sub = np.where(inside)[0][better]
        best[sub], who[sub] = val[better], n
    for i in range(1, grid.size):  # at most C: carry the best so far forward
        if best[i - 1] < best[i]:
            best[i], who[i] = best[i - 1], who[i - 1]
    ok = np.isfinite(best)
    return Frontier(grid, best, who, ok)


def first_seed(a) -> list[dict]:
    """The runs to draw: the L(N) sweep's (trained here if missing), --runs' or --table's,
    seed 0 only."""
    if a.runs is not None:
        rows = S.read_rows(a.runs / "results.csv")
    else:
        rows = C.ln_rows(a, C.settings(a.mode))
    return [r for r in rows if r["seed"] == min(x["seed"] for x in rows)]


CURVE_COLUMNS = ("n_params_total", "seed", "warmup_steps", "compute", "loss")


def load_curves(a, rows) -> tuple[dict, dict]:
    """({N: (C, loss)}, {N: warmup steps}) of the runs: from their run directories, or with
    --table from the curves.csv beside it (written by this script into --out)."""
    if getattr(a, "table", None) is None:
        curves = {r["n_params_total"]: curve(Path(r["run_dir"]), r["n_params_total"]) for r in rows}
        warm = {r["n_params_total"]: record.read_json(Path(r["run_dir"]) / "config.json")["optim"]["warmup_steps"]
                for r in rows}
        return curves, warm
    from knobsim.errors import KnobsimError
    from knobsim.scaling.table import read_csv

    path = a.table.parent / "curves.csv"
    if not path.is_file():
        C.fail(f"--table needs the learning curves beside it, {path}; write it with "
               f"learning_curves.py --runs SWEEP_DIR --out {a.table.parent}")
    try:
        header, body = read_csv(path)
        col = {c: header.index(c) for c in CURVE_COLUMNS}
    except (KnobsimError, ValueError) as e:
        C.fail(f"{path} is not a learning_curves curves.csv ({e}); write it again with "
               "learning_curves.py --runs SWEEP_DIR")
    curves, warm = {}, {}
    for n in sorted({r["n_params_total"] for r in rows}):
        pts = [b for b in body if int(b[col["n_params_total"]]) == n]
        if not pts:
            C.fail(f"{path} has no curve for {n:,} knobs; write it again from the same sweep")
        curves[n] = (np.array([float(b[col["compute"]]) for b in pts]),
                     np.array([float(b[col["loss"]]) for b in pts]))
        warm[n] = int(pts[0][col["warmup_steps"]])
    return curves, warm


def write_curves(rows, curves: dict, warm: dict, out: Path) -> Path:
    """curves.csv: the binned curve of each drawn run (what the figure draws), so the figure
    can be redrawn from a committed table without the run directories."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CURVE_COLUMNS)
    for r in sorted(rows, key=lambda r: r["n_params_total"]):
        n = r["n_params_total"]
        for c, v in zip(*curves[n]):
            w.writerow([n, r["seed"], warm[n], repr(float(c)), repr(float(v))])
    path = out / "curves.csv"
    tmp = path.with_name(".curves.csv.tmp")
    tmp.write_text(buf.getvalue())
    tmp.replace(path)  # atomic: a kill never leaves half a table
    return path


def fit_frontier(rows, fr: Frontier, boot: int, warm: dict):
    """L(C) = floor + B / C^beta on the frontier where the smallest run is past its warmup
    (before that the frontier is warmup). Returns (the fit, the grid points it used)."""
    grid, best = fr.grid, fr.best
    small = min(rows, key=lambda r: r["n_params_total"])
    warm = warm[small["n_params_total"]]
    c0 = 6.0 * small["n_params_total"] * min(WARMUP_SKIP * warm, small["steps"] / 2) * small["batch"] * small["seq"]
    fit_ok = fr.ok & (grid >= c0)
    # The frontier's points are not independent measurements (neighbours share runs), so
    # its bootstrap interval is optimistic; it is reported as a rough guide.
    fit = scaling.fit_power_law(grid[fit_ok], best[fit_ok], var="d", floor=rows[0]["entropy_floor"],
                                bootstrap=boot)
    return fit, fit_ok


def size_slope(fr: Frontier, fit_ok) -> float | None:
    """How the frontier's size grows with compute: a line through the distinct steps of
    log N against log C (None with fewer than 2 sizes on it)."""
    grid, who = fr.grid, fr.who
    sel = fit_ok & (who > 0)
    if len(np.unique(who[sel])) < 2:
        return None
    return float(np.polyfit(np.log(grid[sel]), np.log(who[sel]), 1)[0])


def figure(rows, curves: dict, fr: Frontier, fit, fit_ok, out: Path) -> Path:
    """Left: every size's curve, the frontier and its fit. Right: the size on the frontier."""
    import matplotlib as mpl

    grid, best, who, ok = fr
    floor = rows[0]["entropy_floor"]
    with P.style():
        fig, (a1, a2) = P.figure(ncols=2, width=11.0, height=4.6,
                                 gridspec_kw={"width_ratios": [1.6, 1]})
        ns = sorted(curves)
        norm = mpl.colors.LogNorm(vmin=min(ns), vmax=max(ns))
        cmap = mpl.colormaps["viridis"]
        for n in ns:
            c, loss = curves[n]
            a1.plot(c, loss, color=cmap(norm(n)), lw=1.3, alpha=0.9)
        a1.plot(grid[ok], best[ok], color="k", lw=2.4, alpha=0.35, label="compute-efficient frontier")
        g = np.geomspace(grid[fit_ok].min(), grid[fit_ok].max(), 200)
        P.fit_band(a1, fit, g, color_="k", ls="--",
                   label=f"frontier fit: L = {floor:.3f} + B / C^β, β = {P.fmt_ci(fit.beta, fit.ci.get('beta'))}")
        a1.axhline(floor, color="0.3", ls=":", lw=1.2, label=f"entropy floor {floor:.3f} (exact)")
        P.loglog(a1, "training compute C = 6·N·D (FLOP)", "loss on fresh text (nats/char)",
                 "Loss vs compute, one curve per size")
        a1.set_ylim(floor * 0.7, None)  # room under the floor line for the legend
        sm = mpl.cm.ScalarMappable(norm=norm, cmap=cmap)
        cb = fig.colorbar(sm, ax=a1, pad=0.01)
        cb.set_label("parameters N (total)")
        a1.legend(loc="lower left")

        a2.step(grid[fit_ok], who[fit_ok], where="mid", color=P.color(0))
        a2.set_xscale("log")
        a2.set_yscale("log")
        a2.set_xlabel("training compute C (FLOP)")
        a2.set_ylabel("N of the best run at C (total)")
        a2.set_title("Size on the frontier (fitted range)")
        a2.set_yticks(ns)
        a2.set_yticklabels([f"{n:,}" for n in ns])
        a2.minorticks_off()
        a2.set_ylim(min(ns) / 1.5, max(ns) * 1.5)
        d = sorted({r["tokens"] for r in rows})
        dtext = f"{d[0]:,} tokens each" if len(d) == 1 else f"{d[0]:,} to {d[-1]:,} tokens"
        fig.suptitle(f"Learning curves of {len(ns)} sizes (seed {rows[0]['seed']}); "
                     f"{dtext}, batch {rows[0]['batch']} x {rows[0]['seq']}", fontsize=11)
        return P.save(fig, out / "learning_curves.png")


def main():
    def extra(ap: argparse.ArgumentParser):
        ap.add_argument("--runs", type=Path, default=None,
                        help="a sweep directory to read (default: scaling_params' sweep)")
        C.add_table_option(ap)

    a = C.parse(__doc__, "learning_curves", extra)
    rows = first_seed(a)
    curves, warm = load_curves(a, rows)
    if a.table is None:  # with --table they were read from the curves.csv beside it
        write_curves(rows, curves, warm, a.out)
    all_c = np.concatenate([c for c, _ in curves.values() if c.size])
    grid = np.geomspace(all_c.min(), all_c.max(), 80)
    fr = frontier(curves, grid)
    fit, fit_ok = fit_frontier(rows, fr, MODES[a.mode]["boot"], warm)
    png = figure(rows, curves, fr, fit, fit_ok, a.out)
    C.finish(a, {
        "beta_frontier": fit.beta, "beta_frontier_ci": fit.ci.get("beta"), "B": fit.B,
        "r2_frontier": fit.r2, "entropy_floor": rows[0]["entropy_floor"], "E_fixed_at_floor": True,
        "frontier_n_vs_c_slope": size_slope(fr, fit_ok),
        "frontier": [{"C": float(c), "loss": float(v), "n_params": int(w)}
                     for c, v, w in zip(grid[fit_ok][::6], fr.best[fit_ok][::6], fr.who[fit_ok][::6])],
        "sizes": [int(n) for n in sorted(curves)],
        "compute_range_fitted": [float(grid[fit_ok].min()), float(grid[fit_ok].max())],
        "note": "frontier fit interval from a bootstrap over frontier grid points, which are not "
                "independent: treat it as optimistic",
    }, [png])


if __name__ == "__main__":
    main()
