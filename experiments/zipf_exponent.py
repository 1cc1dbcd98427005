"""Does the Zipf exponent of the language set the scaling exponent? Measured vs the ideal learner.

    python experiments/zipf_exponent.py --quick    # zipf 1.6, 1.8, 2.0, 2.3 x 5 sizes 1e3..1e5, 1M tokens: ~5.5 min (est.; 8.5-10.5 measured, shared CPU)
    python experiments/zipf_exponent.py            # zipf 1.6, 1.7, 1.8, 2.0, 2.3 x 6 sizes 1e3..3.2e5, 2 seeds, 4M tokens: ~1.5 h (estimate)

The quantization model (Michaud et al. 2023, "The Quantization Model of Neural Scaling",
NeurIPS): if a task is made of discrete pieces of knowledge ("quanta") used with
frequencies p_k ∝ k^-(alpha+1), and a model of N parameters learns the ~N most frequent,
its loss falls as L - E ∝ N^-alpha. Here the natural quanta are words, and word frequencies
are ∝ (rank + 2.7)^-zipf, so the simplest prediction is alpha_N = zipf - 1 (kept as a
reference line). The lab can do better than that rule: the ideal learner of K words
(knobsim.data.ideal) has an exact loss curve L*(K) on each language, and its own exponent
alpha_ideal (L*(K) - floor ∝ K^-alpha_ideal, fitted with E free over K in [10, 3000] by
`fit_ideal`) is what "knowing K words" is worth on that language. A model of N knobs whose
eval loss equals L*(K_eff) knows K_eff words in the ideal learner's currency; if
K_eff = c N^gamma, then alpha_N = gamma * alpha_ideal. So each exponent gets:

* alpha_ideal and its slope spread (how far L*(K) - floor is from one power law);
* the measured alpha_N, L(N) = E + A / N^alpha fitted by knobsim.scaling.fit with E fixed at
  the language's exact entropy rate (and, for comparison, E free), 95% bootstrap intervals;
* K_eff of every run, and K_eff = c N^gamma fitted over the runs that know >= 10 words
  (below that the ideal curve is no power law yet), gamma's 95% interval from resampling runs;
* the prediction alpha_N = gamma * alpha_ideal, its interval from gamma's;
* how many words are seen >= 30 times in the run's text (the data limit on K_eff).

Measured (--quick, 1 seed; the four sweeps ran on 2 cores shared with two or three other
training jobs, 8 min 27 s and 10 min 31 s wall for two fresh runs, 400-480 s of CPU;
the three-exponent version of this script took 4.0 min on 2 idle cores, so ~5.5 min idle):

    zipf  ideal alpha (spread)  alpha_N, E fixed [95%]  gamma [95%]          gamma x ideal alpha [95%]
    1.6   0.567 (15%)           0.364 [0.268, 0.443]    0.56 [0.42, 0.66]    0.32 [0.24, 0.38]
    1.8   0.720 (6%)            0.441 [0.275, 0.598]    0.39 [0.21, 0.54]    0.28 [0.15, 0.39]
    2.0   0.874 (8%)            0.523 [0.331, 0.645]    0.42 [0.24, 0.52]    0.37 [0.21, 0.46]
    2.3   1.092 (9%)            0.713 [0.315, 0.820]    0.39 [-0.04, 0.59]   0.43 [-0.05, 0.64]

alpha_N is 0.60-0.65 x the ideal learner's alpha at every exponent, because a model does not
learn words in proportion to its knobs: K_eff grows as N^0.39-0.56, and the 1e5-knob models
already know 60-64% of the words that 1M characters show 30 times (at zipf 2.3 K_eff stops
growing: 56 words at 3e4 knobs, 54 at 1e5). gamma x alpha_ideal lies inside every measured
interval; on the sizes gamma is fitted on (K_eff >= 10; the 1e3 model knows 6-10 words)
alpha_N is 0.364 / 0.318 / 0.402 / 0.607, 10-15% above the prediction at zipf 1.6-2.0 and
42% at 2.3, where the largest model is data-limited and gamma undetermined.
experiments/README.md has the table in full.

Exponents below ~1.6 are left out: there the language is not scale-free (at zipf 1.4 the ideal
learner's own E-free fit misses the floor by -15%, at 1.2 by -100%), so alpha_ideal means
nothing. Each language is the default with only its Zipf exponent changed.

Writes to --out (default experiments/out/zipf_exponent[-quick]):
  sweep-zipf<z>/          one sweep per exponent (resumable)
  zipf_exponent.png       L - floor vs N per exponent, with fits | measured alpha_N vs the
                          ideal learner's alpha, gamma * alpha_ideal and zipf - 1
  zipf_knowledge.png      words known K_eff vs N per exponent, with c N^gamma and the data
                          limit | measured alpha_N against gamma * alpha_ideal
  summary.json            per exponent: floor, alpha (E fixed) and interval, alpha (E free),
                          alpha_predicted (zipf - 1), alpha_ideal, ideal_slope_spread, gamma,
                          gamma_ci, alpha_predicted_from_ideal (+ci), alpha_k_eff_range (+ci:
                          E fixed, the sizes gamma is fitted on), alpha_ideal_in_k_range,
                          learnable_rank_at_D, per_size and per-run k_eff, R²
"""

from __future__ import annotations

import numpy as np

import _common as C
from knobsim.data.ideal import K_EFF_MIN  # words: below it L*(K) is no power law yet
from knobsim.scaling import plots as P
from knobsim import scaling
from knobsim.scaling import sweep as S
from knobsim.config import LanguageConfig

MODES = {
    # boot: bootstrap resamples of the E-fixed fits and of gamma; boot_free: of the E-free fit,
    # whose interval at 5 points of one seed says little (alpha up to ~15) and whose refits are
    # the slowest part of the analysis (~10 s per 50 resamples per language on one core).
    "full": dict(zipfs=[1.6, 1.7, 1.8, 2.0, 2.3], sizes="1e3:3.16e5:6", seeds=2, tokens=4_000_000,
                 boot=200, boot_free=200),
    "quick": dict(zipfs=[1.6, 1.8, 2.0, 2.3], sizes="1e3:1e5:5", seeds=1, tokens=1_000_000,
                  boot=200, boot_free=50),
    # tiny: scaling_params' tiny sweep (sizes, 2 seeds, tokens) per exponent, so that its
    # compiled programs serve both (only the tables' values differ, not the shapes).
    "tiny": dict(zipfs=[1.6, 2.0], sizes="200,400,800", seeds=2, tokens=256, boot=6, boot_free=6),
}
FULL_MIN_TOKENS = 4_000_000
K_PER_DECADE = 16  # the K grid K_eff is read from (log-linear between its points)


def points(mode: str):
    m = MODES[mode]
    sh = C.shape(mode)
    pts = []
    for b in S.parse_sizes(m["sizes"]):
        d = m["tokens"] if m["tokens"] is not None else max(FULL_MIN_TOKENS, 20 * b)
        pts += S.sweep_points([b], m["seeds"], tokens=d, **sh)
    return pts


def known_words(lang, losses) -> np.ndarray:
    """K_eff of each loss on this language (knobsim.data.ideal.k_effectives on a K grid of
    K_PER_DECADE points a decade)."""
    from knobsim.data import ideal

    return ideal.k_effectives(lang, losses, np.r_[0, ideal.k_grid(len(lang.words), K_PER_DECADE)])


def knowledge_fit(rows, k_eff, boot: int, seed: int = 0) -> dict | None:
    """K_eff = c N^gamma over the runs whose K_eff >= K_EFF_MIN (knobsim.data.ideal.knowledge_fit)."""
    from knobsim.data import ideal

    return ideal.knowledge_fit([r["n_params_total"] for r in rows], k_eff, boot, seed, K_EFF_MIN)


def analyse(z: float, rows: list[dict], boot: int, boot_free: int | None = None) -> dict:
    """Everything measured on one language: the two L(N) fits, the ideal learner's exponent,
    K_eff per run and per size, gamma and the prediction gamma * alpha_ideal."""
    from knobsim.data import ideal
    from knobsim.data.language import build_language

    lang = build_language(LanguageConfig(zipf=z))
    n = np.array([r["n_params_total"] for r in rows], float)
    loss = np.array([r["final_eval_loss"] for r in rows], float)
    floor = rows[0]["entropy_floor"]
    fixed = scaling.fit_power_law(n, loss, var="n", floor=floor, bootstrap=boot)
    free = scaling.fit_power_law(n, loss, var="n", bootstrap=boot if boot_free is None else boot_free)
    ifit = ideal.fit_ideal(lang)
    ns, mean, sd, cnt = P.seed_stats(rows)
    k_all = known_words(lang, np.r_[loss, mean])  # one ideal curve for runs and sizes
    k_run, k_size = k_all[:loss.size], k_all[loss.size:]
    kfit = knowledge_fit(rows, k_run, boot)
    d = sorted({int(r["tokens"]) for r in rows})
    pred = pred_ci = in_range = local = None
    if kfit is not None:
        pred = kfit["gamma"] * ifit.alpha
        if kfit["gamma_ci"] is not None:
            pred_ci = [g * ifit.alpha for g in kfit["gamma_ci"]]
        # The same comparison on the same runs: alpha_N (E fixed) over the runs that know
        # >= K_EFF_MIN words, and the ideal curve's own log-log slope over the K they reach.
        sel = k_run >= K_EFF_MIN
        in_range = fixed if sel.all() else scaling.fit_power_law(n[sel], loss[sel], var="n", floor=floor,
                                                                 bootstrap=boot)
        kk = np.unique(np.round(np.geomspace(k_run[sel].min(), k_run[sel].max(), 12)).astype(int))
        if kk.size >= 2:
            ex = ideal.ideal_curve(lang, kk) - lang.entropy_rate
            local = dict(alpha=float(-np.polyfit(np.log(kk), np.log(ex), 1)[0]),
                         k_range=[int(kk[0]), int(kk[-1])])
    return dict(zipf=z, rows=rows, floor=floor, fixed=fixed, free=free, ideal=ifit, kfit=kfit,
                k_run=k_run, ns=ns, mean=mean, sd=sd, count=cnt, k_size=k_size, tokens=d,
                learnable=ideal.learnable_rank(lang, d[-1]), pred=pred, pred_ci=pred_ci,
                in_range=in_range, ideal_local=local)


def _yerr(v, ci):
    """Error-bar lengths (2, n) from intervals; NaN where there is none. A percentile interval
    need not contain the point estimate (few or skewed bootstrap refits): clip at the point
    rather than pass matplotlib negative lengths."""
    v = np.asarray(v, float)
    ci = np.array([c if c is not None else (np.nan, np.nan) for c in ci], float).reshape(-1, 2)
    return np.clip([v - ci[:, 0], ci[:, 1] - v], 0, None)


def _alpha_ci(fit):
    return fit.ci.get("alpha") if fit.ci else None


def figure_alpha(per, out):
    """Left: L - floor vs N per exponent with the E-fixed fits. Right: measured alpha_N against
    the ideal learner's alpha, gamma * alpha_ideal and the zipf - 1 rule, per exponent."""
    with P.style():
        fig, (a1, a2) = P.figure(ncols=2, width=12.0, height=4.8)
        for k, p in enumerate(per):
            col = P.color(k)
            ns = [r["n_params_total"] for r in p["rows"]]
            P.points_by_n(a1, p["rows"], offset=p["floor"], color_=col, label=None)
            f = p["fixed"]
            P.fit_band(a1, f, P.geomgrid(min(ns), max(ns), pad=1.3), offset=p["floor"], color_=col,
                       label=f"zipf {p['zipf']:g} (floor {p['floor']:.3f}): α_N = {f.alpha:.2f}")
        P.loglog(a1, "parameters N (total)", "eval loss − entropy floor (nats/char)",
                 "Reducible loss per language, E fixed at its floor")
        a1.legend(loc="lower left", fontsize=8.5)

        z = np.array([p["zipf"] for p in per])
        dz = 0.012 * (z.max() - z.min() + 0.5)  # side by side, not on top of each other
        al = np.array([p["fixed"].alpha for p in per])
        a2.errorbar(z - dz, al, yerr=_yerr(al, [_alpha_ci(p["fixed"]) for p in per]), fmt="o",
                    color=P.color(0), capsize=4, label="measured α_N, E fixed at floor (95% CI)")
        a2.plot(z - dz, [p["free"].alpha for p in per], "s", mfc="none", color=P.color(0),
                label="measured α_N, E free")
        ai = np.array([p["ideal"].alpha for p in per])
        spread = np.array([p["ideal"].slope_spread for p in per])
        a2.errorbar(z, ai, yerr=ai * spread, fmt="D-", color=P.color(2), capsize=4, lw=1.2,
                    label="ideal learner α in K (bar: ± its local-slope spread)")
        have = [i for i, p in enumerate(per) if p["pred"] is not None]
        if have:
            pr = np.array([per[i]["pred"] for i in have])
            a2.errorbar(z[have] + dz, pr, yerr=_yerr(pr, [per[i]["pred_ci"] for i in have]), fmt="^",
                        color=P.color(1), capsize=4, label="γ × ideal α (γ: words known ∝ N^γ; 95% CI)")
        zz = np.linspace(z.min() - 0.1, z.max() + 0.1, 10)
        a2.plot(zz, zz - 1, "--", color="0.4", lw=1.2, label="quantization rule α = zipf − 1")
        a2.set_xlabel("Zipf exponent of word frequencies")
        a2.set_ylabel("scaling exponent α")
        a2.set_title("Measured α_N vs the ideal learner's α")
        a2.set_ylim(0, None)
        a2.legend(loc="upper left", fontsize=8.5)
        d = sorted({t for p in per for t in p["tokens"]})
        seeds = len({r["seed"] for r in per[0]["rows"]})
        fig.suptitle(f"Zipf exponent vs scaling exponent: {len(per[0]['ns'])} sizes x {seeds} seed"
                     f"{'s' if seeds > 1 else ''} per language, D = {d[0]:,}"
                     + (f"..{d[-1]:,}" if len(d) > 1 else "") + " tokens per run", fontsize=11)
        return P.save(fig, out / "zipf_exponent.png")


def figure_knowledge(per, out):
    """Why measured and ideal differ. Left: words known K_eff(N) per exponent with c N^gamma,
    and how many words the run's text shows >= 30 times. Right: alpha_N against gamma *
    alpha_ideal (equal if the two power laws compose)."""
    from knobsim.data.ideal import LEARNABLE_SEEN

    with P.style():
        fig, (a1, a2) = P.figure(ncols=2, width=12.0, height=5.0)
        n_all = np.array([r["n_params_total"] for p in per for r in p["rows"]], float)
        grid = P.geomgrid(n_all.min(), n_all.max(), pad=1.3)
        low_drawn = False
        for k, p in enumerate(per):
            col = P.color(k)
            n = np.array([r["n_params_total"] for r in p["rows"]], float)
            kr = p["k_run"]
            used = kr >= K_EFF_MIN
            kf = p["kfit"]
            if kf is not None:
                ci = kf["gamma_ci"]
                ci_text = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
                lab = f"zipf {p['zipf']:g}: γ = {kf['gamma']:.2f}{ci_text}"
                a1.plot(grid, kf["c"] * grid ** kf["gamma"], "-", color=col, lw=1.4, label=lab)
            else:
                lab = f"zipf {p['zipf']:g}: no γ (< 2 sizes know {K_EFF_MIN} words)"
                a1.plot([], [], "-", color=col, label=lab)
            a1.plot(n[used], kr[used], "o", color=col, ms=5)
            if (~used).any():
                a1.plot(n[~used], np.maximum(kr[~used], 0.5), "o", mfc="none", color=col, ms=5)
                low_drawn = True
            if p["learnable"] > 0:
                a1.axhline(p["learnable"], color=col, ls=":", lw=1.1)
        if low_drawn:
            a1.plot([], [], "o", mfc="none", color="0.4", label=f"K_eff < {K_EFF_MIN}: not fitted (0 drawn at 0.5)")
        a1.plot([], [], ":", color="0.4", label=f"words seen ≥ {LEARNABLE_SEEN}× in the run's text (data limit)")
        P.loglog(a1, "parameters N (total)", "words known, K_eff (ideal learner's currency)",
                 "How many words a model of N knobs knows")
        top = max([p["learnable"] for p in per] + [float(np.max(p["k_run"])) for p in per] + [1.0])
        a1.set_ylim(top=7 * top)  # headroom: the legend sits above the data and the data limits
        a1.legend(loc="upper left", fontsize=8)

        have = [p for p in per if p["pred"] is not None]
        for k, p in enumerate(per):
            if p["pred"] is None:
                continue
            col = P.color(k)
            xe = _yerr([p["pred"]], [p["pred_ci"]])
            al, al_k = p["fixed"].alpha, p["in_range"].alpha
            a2.errorbar([p["pred"]], [al], xerr=xe, yerr=_yerr([al], [_alpha_ci(p["fixed"])]), fmt="o",
                        color=col, capsize=4,
                        label=f"zipf {p['zipf']:g}: γ·α = {p['kfit']['gamma']:.2f} × {p['ideal'].alpha:.2f} = "
                              f"{p['pred']:.2f}; α_N {al:.2f} ●, {al_k:.2f} □")
            a2.errorbar([p["pred"]], [al_k], yerr=_yerr([al_k], [_alpha_ci(p["in_range"])]), fmt="s",
                        mfc="white", color=col, capsize=3, lw=0.9)
        if have:
            a2.plot([], [], "o", color="0.4", label="α_N, E fixed, all sizes (95% CI)")
            a2.plot([], [], "s", mfc="white", color="0.4", label=f"α_N, E fixed, sizes with K_eff ≥ {K_EFF_MIN}")
        vals = [v for p in have for v in (p["pred"], p["fixed"].alpha, p["in_range"].alpha,
                                          *(p["pred_ci"] or []), *(_alpha_ci(p["fixed"]) or []))]
        hi = max(1.0, 1.1 * max(vals + [p["fixed"].alpha for p in per]))  # room for the legend
        a2.plot([0, hi], [0, hi], "--", color="0.4", lw=1.2, label="measured = predicted")
        a2.set_xlim(0, hi)
        a2.set_ylim(0, hi)
        a2.set_xlabel("predicted α_N = γ × ideal learner's α (95% CI from γ)")
        a2.set_ylabel("measured α_N of L(N), E fixed at floor")
        a2.set_title("Knobs → words → loss: do the exponents compose?")
        a2.legend(loc="lower right", fontsize=7.5)
        fig.suptitle("Words known per language: K_eff is the ideal learner's K with the same loss "
                     f"(fits over runs with K_eff ≥ {K_EFF_MIN})", fontsize=11)
        return P.save(fig, out / "zipf_knowledge.png")


def summary_row(p) -> dict:
    f, free, ifit, kf = p["fixed"], p["free"], p["ideal"], p["kfit"]
    return {
        "zipf": p["zipf"], "entropy_floor": p["floor"], "alpha_predicted": p["zipf"] - 1,
        "alpha": f.alpha, "alpha_ci": _alpha_ci(f), "r2": f.r2,
        "alpha_E_free": free.alpha, "alpha_E_free_ci": _alpha_ci(free),
        "E_free": free.E, "r2_E_free": free.r2,
        "alpha_ideal": ifit.alpha, "ideal_slope_spread": ifit.slope_spread,
        "ideal_E_rel_error": ifit.rel_error,
        "gamma": kf["gamma"] if kf else None, "gamma_ci": kf["gamma_ci"] if kf else None,
        "k_eff_c": kf["c"] if kf else None, "k_eff_n_used": kf["n_used"] if kf else [],
        "alpha_predicted_from_ideal": p["pred"], "alpha_predicted_from_ideal_ci": p["pred_ci"],
        "alpha_k_eff_range": p["in_range"].alpha if p["in_range"] else None,
        "alpha_k_eff_range_ci": _alpha_ci(p["in_range"]) if p["in_range"] else None,
        "alpha_ideal_in_k_range": p["ideal_local"]["alpha"] if p["ideal_local"] else None,
        "k_range": p["ideal_local"]["k_range"] if p["ideal_local"] else None,
        "tokens": p["tokens"], "learnable_rank_at_D": p["learnable"],
        "per_size": [{"n_params": int(n), "loss_mean": float(mu), "loss_sd": float(s), "seeds": int(c),
                      "k_eff": float(ke)}
                     for n, mu, s, c, ke in zip(p["ns"], p["mean"], p["sd"], p["count"], p["k_size"])],
        "runs": [{"n_params": int(r["n_params_total"]), "seed": int(r["seed"]), "k_eff": float(k)}
                 for r, k in zip(p["rows"], p["k_run"])],
    }


def main():
    a = C.parse(__doc__, "zipf_exponent")
    m = MODES[a.mode]
    per = []
    for z in m["zipfs"]:
        sett = C.settings(a.mode, language=LanguageConfig(zipf=z))
        rows = C.run(points(a.mode), sett, a.out / f"sweep-zipf{z:g}", a.quiet)
        per.append(analyse(z, rows, m["boot"], m["boot_free"]))

    pngs = [figure_alpha(per, a.out), figure_knowledge(per, a.out)]
    z = np.array([p["zipf"] for p in per])
    slope = float(np.polyfit(z, [p["fixed"].alpha for p in per], 1)[0]) if len(per) >= 2 else None
    slope_ideal = float(np.polyfit(z, [p["ideal"].alpha for p in per], 1)[0]) if len(per) >= 2 else None
    C.finish(a, {
        "per_zipf": [summary_row(p) for p in per],
        "d_alpha_d_zipf": slope, "d_alpha_d_zipf_predicted": 1.0,
        "d_alpha_ideal_d_zipf": slope_ideal, "k_eff_min": K_EFF_MIN,
    }, pngs)


if __name__ == "__main__":
    main()
