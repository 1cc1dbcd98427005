"""IsoFLOP profiles: the compute-optimal model size N_opt(C), two ways.

    python experiments/isoflop.py --quick     # 3 budgets 1e10..1e11 FLOP x 6 sizes, 1 seed: ~4 min
    python experiments/isoflop.py             # 6 budgets 1e11..3e13 x 7 sizes, 2 seeds: ~2.5 h (2-core AMD EPYC Zen 4)

Hoffmann et al. (2022, "Chinchilla"), approach 2: at each compute budget C = 6 N D, train
models of several sizes N, each on D = C / (6N) tokens, and fit a parabola to the final
loss against log N. Its vertex is N_opt(C); a line through log N_opt against log C gives
N_opt ∝ C^a. The interval on a is a bootstrap over points: the runs of each budget are
resampled with replacement, every parabola and the line refitted (resamples whose
parabola opens downwards are dropped and counted).

Approach 3 on the same runs: L(N, D) = E + A / N^alpha + B / D^beta fitted by
knobsim.scaling.fit.fit_chinchilla (Huber on log loss, L-BFGS from Hoffmann et al.'s grid,
bootstrap intervals), whose frontier gives a = beta / (alpha + beta)
(knobsim.scaling.frontier.compute_optimal). Chinchilla found a ≈ 0.5 both ways (approach 2: 0.49,
approach 3: 0.46).

Sizes at each budget are spread in log N around N_c = sqrt(C / 120) (20 tokens per
parameter), from N_c / 16 to 4 N_c; sizes that would get fewer than MIN_STEPS steps are left
out. N is the total count; D is rounded up to whole steps, and C = 6 N D is recomputed
from what was trained.

Writes to --out (default experiments/out/isoflop[-quick]):
  sweep/          runs and results.csv (tag column = the budget)
  isoflop.png     loss vs N per budget with parabolas | N_opt vs C, approaches 2 and 3
  summary.json    a (approach 2) and interval, N_opt and tokens per knob at the optimum
                  per budget (both approaches), a (approach 3) and interval, the L(N,D)
                  constants
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

import _common as C
from knobsim.scaling import plots as P
from knobsim import scaling
from knobsim.scaling import sweep as S
from knobsim.data.language import VOCAB
from knobsim.models import sizing

MODES = {
    # budgets (FLOP), sizes per budget, seeds, bootstrap resamples (approach 3, approach 2)
    "full": dict(budgets=[1e11, 3e11, 1e12, 3e12, 1e13, 3e13], k=7, seeds=2, boot=200, boot_a2=1000),
    "quick": dict(budgets=[1e10, 3e10, 1e11], k=6, seeds=1, boot=200, boot_a2=1000),
    "tiny": dict(budgets=[2e6, 6e6], k=3, seeds=1, boot=6, boot_a2=20),
}
SPAN = (1 / 16, 4.0)  # sizes from N_c / 16 to 4 N_c
MIN_STEPS = 30
MIN_BUDGET = 300  # the smallest transformer worth the name
# --tiny only exercises the plumbing: 16 starts for the L(N,D) fit instead of the coarse
# grid's 243 (which took 10 of its 25 s).
TINY_GRID = {"coef": (5.0, 15.0), "exp": (0.5, 1.5), "e": (0.0,)}


def points(mode: str, budgets=None):
    """The mode's runs; `budgets` (FLOP) replaces the mode's own (results/isoflop/ideal_grid.py)."""
    m = MODES[mode]
    sh = C.shape(mode)
    per_step = sh["batch"] * sh["seq"]
    pts = []
    for c in m["budgets"] if budgets is None else budgets:
        nc = np.sqrt(c / 120.0)
        lo = max(MIN_BUDGET if mode != "tiny" else 150, nc * SPAN[0])
        for b in sorted({round(x) for x in np.geomspace(lo, nc * SPAN[1], m["k"])}):
            n = sizing.count_params("transformer", sizing.shape_for_budget("transformer", b, VOCAB, sh["seq"])).total
            d = round(c / (6 * n))
            if d < MIN_STEPS * per_step and mode != "tiny":
                continue
            d = max(d, per_step)
            for s in range(m["seeds"]):
                pts.append(S.Point(budget=b, tokens=d, seed=s, tag=f"C={c:.3g}"))
    return pts


def vertex(logn: np.ndarray, loss: np.ndarray):
    """(log10 N_opt, curvature) of the parabola loss = a x^2 + b x + c, x = log10 N."""
    if np.unique(logn).size < 3:
        return np.nan, np.nan
    a2, b2, _ = np.polyfit(logn, loss, 2)
    if a2 <= 0:
        return np.nan, a2
    return -b2 / (2 * a2), a2


class Approach2(NamedTuple):
    xs: dict  # C -> log10 N_opt, the parabola's vertex (NaN where it opens downwards)
    a: float  # N_opt ~ C^a: the line through log10 N_opt against log10 C
    b0: float  # its intercept
    a_ci: tuple | None  # 95% bootstrap interval of a (None with under 20 kept resamples)
    kept: float  # share of resamples whose every parabola opens upwards
    n_ci: dict  # C -> 95% interval of N_opt, or None


def approach2(groups: dict, rng, n_boot: int) -> Approach2:
    """groups: C -> (log10 N (R,), loss (R,)). The per-budget vertices, the exponent a, its
    bootstrap interval, the bootstrap's kept share, and the per-budget N_opt intervals."""
    cs = sorted(groups)
    xs = {c: vertex(*groups[c])[0] for c in cs}
    ok = [c for c in cs if np.isfinite(xs[c])]

    def line(cc, vv):
        return np.polyfit(np.log10(cc), vv, 1) if len(cc) >= 2 else (np.nan, np.nan)

    a, b0 = line(np.array(ok), np.array([xs[c] for c in ok]))
    boot_a, boot_x, kept = [], {c: [] for c in cs}, 0
    for _ in range(n_boot):
        v = {}
        for c in cs:
            ln, lo = groups[c]
            idx = rng.integers(0, ln.size, ln.size)
            v[c] = vertex(ln[idx], lo[idx])[0]
        good = [c for c in cs if np.isfinite(v[c])]
        for c in good:
            boot_x[c].append(v[c])
        if len(good) == len(cs):
            kept += 1
            boot_a.append(line(np.array(cs), np.array([v[c] for c in cs]))[0])
    a_ci = tuple(np.percentile(boot_a, [2.5, 97.5])) if len(boot_a) >= 20 else None
    n_ci = {c: (tuple(10 ** np.percentile(boot_x[c], [2.5, 97.5])) if len(boot_x[c]) >= 20 else None)
            for c in cs}
    return Approach2(xs, float(a), float(b0), a_ci, kept / max(1, n_boot), n_ci)


def profiles(rows) -> tuple[dict, dict]:
    """The runs by budget (C -> rows, tag "C=...") and each budget's profile
    (C -> (log10 N (R,), final loss (R,)))."""
    budgets = {}
    for r in rows:
        budgets.setdefault(float(r["tag"].split("=")[1]), []).append(r)
    groups = {c: (np.log10([r["n_params_total"] for r in rs]), np.array([r["final_eval_loss"] for r in rs]))
              for c, rs in budgets.items()}
    return budgets, groups


def approach3(rows, mode: str):
    """L(N, D) = E + A / N^alpha + B / D^beta over every run (Hoffmann et al.'s approach 3)."""
    n = np.array([r["n_params_total"] for r in rows], float)
    d = np.array([r["tokens"] for r in rows], float)
    loss = np.array([r["final_eval_loss"] for r in rows], float)
    return scaling.fit_chinchilla(n, d, loss, bootstrap=MODES[mode]["boot"],
                                  grid=TINY_GRID if mode == "tiny" else "chinchilla")


def figure(rows, budgets: dict, groups: dict, a2: Approach2, fit3, out: Path) -> Path:
    """Left: loss vs N per budget with its parabola and vertex. Right: N_opt vs C, the
    vertices and their line (approach 2) beside the L(N, D) fit's frontier (approach 3)."""
    xs, n_ci = a2.xs, a2.n_ci
    cs = np.array(sorted(budgets))
    with P.style():
        fig, (a1, ax2) = P.figure(ncols=2, width=11.0, height=4.6)
        for k, c in enumerate(cs):
            col = P.color(k)
            rs = budgets[c]
            P.points_by_n(a1, rs, color_=col, label=None)
            ln, lo = groups[c]
            if np.unique(ln).size >= 3:
                coef = np.polyfit(ln, lo, 2)
                g = np.linspace(ln.min() - 0.15, ln.max() + 0.15, 100)
                a1.plot(10 ** g, np.polyval(coef, g), color=col, lw=1.3, label=f"C = {P.plain(c)} FLOP")
                if np.isfinite(xs[c]):  # the parabola's own minimum: it can lie below every run
                    a1.plot([10 ** xs[c]], [np.polyval(coef, xs[c])], "*", color=col, ms=12,
                            mec="k", mew=0.6, zorder=5)
        floor = rows[0]["entropy_floor"]
        a1.axhline(floor, color="k", ls=":", lw=1.0, label=f"exact floor {floor:.3f}")
        a1.axhline(fit3.E, color="0.45", ls="--", lw=1.0,
                   label=f"L(N,D) fit's E {fit3.E:.4f} ({100 * (fit3.E / floor - 1):+.2f}%)")
        a1.plot([], [], "*", color="0.6", ms=10, mec="k", mew=0.6, ls="none",
                label="parabola minimum (N_opt), not a run")
        a1.set_xscale("log")
        a1.set_xlabel("parameters N (total)")
        a1.set_ylabel("final eval loss (nats/char)")
        a1.set_title("IsoFLOP profiles: loss against N at fixed compute")
        y0, y1 = a1.get_ylim()
        a1.set_ylim(y0, y0 + 1.35 * (y1 - y0))  # room above the runs for the legend
        a1.legend(loc="upper center", fontsize=8, ncol=2)

        ok = np.array([np.isfinite(xs[c]) for c in cs])
        nopt = np.array([10 ** xs[c] if np.isfinite(xs[c]) else np.nan for c in cs])
        err = np.array([[nopt[i] - n_ci[c][0], n_ci[c][1] - nopt[i]] if n_ci[c] and ok[i] else [0, 0]
                        for i, c in enumerate(cs)]).T
        ax2.errorbar(cs[ok], nopt[ok], yerr=np.clip(err[:, ok], 0, None), fmt="o", color=P.color(0), capsize=4,
                     label="approach 2: parabola vertices (95% bootstrap)")
        cg = np.geomspace(cs.min() / 2, cs.max() * 2, 50)
        if np.isfinite(a2.a):
            ci = f" [{a2.a_ci[0]:.2f}, {a2.a_ci[1]:.2f}]" if a2.a_ci else ""
            ax2.plot(cg, 10 ** (a2.b0 + a2.a * np.log10(cg)), color=P.color(0), lw=1.4,
                     label=f"approach 2: N_opt ∝ C^{a2.a:.2f}{ci}")
        fr_g = scaling.compute_optimal(fit3, cg)
        ci3 = fit3.ci.get("a")
        ax2.plot(cg, fr_g.n_opt, "--", color=P.color(1),
                 label=f"approach 3, L(N,D) fit: a = {fit3.a:.2f}"
                       + (f" [{ci3[0]:.2f}, {ci3[1]:.2f}]" if ci3 else ""))
        if np.isfinite(fr_g.n_opt_ci).all():
            ax2.fill_between(cg, fr_g.n_opt_ci[:, 0], fr_g.n_opt_ci[:, 1], color=P.color(1), alpha=0.15, lw=0)
        ax2.plot(cg, np.sqrt(cg / 120), ":", color="0.4", label="20 tokens per parameter")
        P.loglog(ax2, "compute C = 6·N·D (FLOP)", "compute-optimal N_opt (total)",
                 "Compute-optimal model size")
        lows = [fr_g.n_opt.min()] + [n_ci[c][0] for c in cs if n_ci[c]] + list(nopt[ok])
        lo_y = float(np.nanmin(lows))
        ax2.set_ylim(lo_y / 3, np.sqrt(cg.max() / 120) * 30)  # headroom: the legend sits above the lines
        ax2.legend(loc="upper left", fontsize=8)
        fig.suptitle(f"IsoFLOP: {len(cs)} budgets, {len(rows)} runs "
                     f"(batch {rows[0]['batch']} x {rows[0]['seq']}, lr rule); "
                     f"floor {rows[0]['entropy_floor']:.3f} nats/char", fontsize=11)
        return P.save(fig, out / "isoflop.png")


def per_budget(budgets: dict, groups: dict, a2: Approach2, fit3) -> list[dict]:
    """Per budget: N_opt both ways with intervals, whether the vertex lies inside the sizes
    trained, D_opt, tokens per knob at the optimum (D_opt / N_opt) both ways, and the sizes."""
    xs, n_ci = a2.xs, a2.n_ci
    cs = np.array(sorted(budgets))
    fr = scaling.compute_optimal(fit3, cs)
    return [{
        "C": float(c), "n_opt": float(10 ** xs[c]) if np.isfinite(xs[c]) else None,
        "n_opt_ci": n_ci[c], "n_opt_interior": bool(np.isfinite(xs[c]) and
                                                    groups[c][0].min() <= xs[c] <= groups[c][0].max()),
        "d_opt": float(c / (6 * 10 ** xs[c])) if np.isfinite(xs[c]) else None,
        # characters per knob at the optimum (Chinchilla's ~20 are BPE tokens of ~4 characters)
        "tokens_per_knob": float(c / (6 * 10 ** (2 * xs[c]))) if np.isfinite(xs[c]) else None,
        "tokens_per_knob_ci": ([float(c / (6 * n_ci[c][1] ** 2)), float(c / (6 * n_ci[c][0] ** 2))]
                               if n_ci[c] else None),
        "n_opt_approach3": float(fr.n_opt[i]), "n_opt_approach3_ci": fr.n_opt_ci[i].tolist(),
        "tokens_per_knob_approach3": float(c / (6 * fr.n_opt[i] ** 2)),
        "sizes": sorted({int(r["n_params_total"]) for r in budgets[c]}),
    } for i, c in enumerate(cs)]


def main():
    a = C.parse(__doc__, "isoflop")
    rows = C.run(points(a.mode), C.settings(a.mode), a.out / "sweep", a.quiet)
    budgets, groups = profiles(rows)
    a2 = approach2(groups, np.random.default_rng(0), MODES[a.mode]["boot_a2"])
    fit3 = approach3(rows, a.mode)
    png = figure(rows, budgets, groups, a2, fit3, a.out)
    C.finish(a, {
        "a_approach2": a2.a, "a_approach2_ci": a2.a_ci, "bootstrap_kept_share": a2.kept,
        "a_approach3": fit3.a, "a_approach3_ci": fit3.ci.get("a"),
        "b_approach3": fit3.b, "b_approach3_ci": fit3.ci.get("b"),
        "per_budget": per_budget(budgets, groups, a2, fit3),
        "fit_nd": C.fit_dict(fit3), "entropy_floor": rows[0]["entropy_floor"],
    }, [png])


if __name__ == "__main__":
    main()
