"""Does the Zipf exponent of the language set the scaling exponent? Measured vs predicted.

    python experiments/zipf_exponent.py --quick    # zipf 1.2, 1.6, 2.0 x 5 sizes 1e3..1e5, 1M tokens: ~4 min
    python experiments/zipf_exponent.py            # zipf 1.1..2.3 (5) x 6 sizes 1e3..3.2e5, 2 seeds, 4M tokens: ~1 h (estimate)

The quantization model (Michaud et al. 2023, "The Quantization Model of Neural Scaling",
NeurIPS): if a task is made of discrete pieces of knowledge ("quanta") used with
frequencies p_k ∝ k^-(alpha+1), and a model of N parameters learns the ~N most frequent,
its loss falls as L - E ∝ N^-alpha. Here the natural quanta are words (a model that has
learned a word's spelling predicts its letters), and word frequencies are
∝ (rank + 2.7)^-zipf, so the prediction is alpha_N = zipf - 1.

For each exponent: a language with that exponent (everything else as the default
language), the same sizes and token budget, and L(N) = E + A / N^alpha fitted by
knobsim.scaling.fit with E fixed at that language's exact entropy rate (and, for comparison,
E free). What is measured is reported as measured, beside the prediction.

Writes to --out (default experiments/out/zipf_exponent[-quick]):
  sweep-zipf<z>/          one sweep per exponent (resumable)
  zipf_exponent.png       L - floor vs N per exponent, with fits | measured alpha vs zipf - 1
  summary.json            per exponent: floor, alpha (E fixed) and interval, alpha (E free),
                          predicted alpha, R²
"""

from __future__ import annotations

import numpy as np

import _common as C
from knobsim.scaling import plots as P
from knobsim import scaling
from knobsim.scaling import sweep as S
from knobsim.config import LanguageConfig

MODES = {
    "full": dict(zipfs=[1.1, 1.4, 1.7, 2.0, 2.3], sizes="1e3:3.16e5:6", seeds=2, tokens=4_000_000, boot=200),
    "quick": dict(zipfs=[1.2, 1.6, 2.0], sizes="1e3:1e5:5", seeds=1, tokens=1_000_000, boot=200),
    # tiny: scaling_params' tiny sweep (sizes, 2 seeds, tokens) per exponent, so that its
    # compiled programs serve both (only the tables' values differ, not the shapes).
    "tiny": dict(zipfs=[1.2, 2.0], sizes="200,400,800", seeds=2, tokens=256, boot=6),
}
FULL_MIN_TOKENS = 4_000_000


def points(mode: str):
    m = MODES[mode]
    sh = C.shape(mode)
    pts = []
    for b in S.parse_sizes(m["sizes"]):
        d = m["tokens"] if m["tokens"] is not None else max(FULL_MIN_TOKENS, 20 * b)
        pts += S.sweep_points([b], m["seeds"], tokens=d, **sh)
    return pts


def main():
    a = C.parse(__doc__, "zipf_exponent")
    m = MODES[a.mode]
    per = []
    for z in m["zipfs"]:
        sett = C.settings(a.mode, language=LanguageConfig(zipf=z))
        rows = C.run(points(a.mode), sett, a.out / f"sweep-zipf{z:g}", a.quiet)
        n = np.array([r["n_params_total"] for r in rows], float)
        loss = np.array([r["final_eval_loss"] for r in rows], float)
        floor = rows[0]["entropy_floor"]
        fixed = scaling.fit_power_law(n, loss, var="n", floor=floor, bootstrap=m["boot"])
        free = scaling.fit_power_law(n, loss, var="n", bootstrap=m["boot"])
        per.append(dict(zipf=z, rows=rows, floor=floor, fixed=fixed, free=free))

    with P.style():
        fig, (a1, a2) = P.figure(ncols=2, width=11.0, height=4.5)
        for k, p in enumerate(per):
            col = P.color(k)
            rows, floor = p["rows"], p["floor"]
            ns = [r["n_params_total"] for r in rows]
            P.points_by_n(a1, rows, offset=floor, color_=col, label=None)
            grid = P.geomgrid(min(ns), max(ns), pad=1.3)
            f = p["fixed"]
            P.fit_band(a1, f, grid, offset=floor, color_=col,
                       label=f"zipf {p['zipf']:g} (floor {floor:.3f}): α = {f.alpha:.3f}")
        P.loglog(a1, "parameters N (total)", "eval loss − entropy floor (nats/char)",
                 "Reducible loss per language, E fixed at its floor")
        a1.legend(loc="lower left")

        z = np.array([p["zipf"] for p in per])
        al = np.array([p["fixed"].alpha for p in per])
        ci = np.array([p["fixed"].ci.get("alpha", (np.nan, np.nan)) for p in per])
        # A percentile interval need not contain the point estimate (few or skewed bootstrap
        # refits): clip the bars at the point rather than pass matplotlib negative lengths.
        a2.errorbar(z, al, yerr=np.clip([al - ci[:, 0], ci[:, 1] - al], 0, None), fmt="o", color=P.color(0), capsize=4,
                    label="measured, E fixed at floor (95% bootstrap)")
        a2.plot(z, [p["free"].alpha for p in per], "s", mfc="none", color=P.color(1),
                label="measured, E free")
        zz = np.linspace(min(z) - 0.1, max(z) + 0.1, 10)
        a2.plot(zz, zz - 1, "--", color="0.3", label="quantization model: α = zipf − 1")
        a2.set_xlabel("Zipf exponent of word frequencies")
        a2.set_ylabel("scaling exponent α of L(N)")
        a2.set_title("Measured α vs the quantization model")
        a2.legend(loc="upper left")
        d = sorted({r["tokens"] for p in per for r in p["rows"]})
        fig.suptitle(f"Zipf exponent vs scaling exponent: {len(per[0]['rows'])} runs per language, "
                     f"D = {d[0]:,}" + (f"..{d[-1]:,}" if len(d) > 1 else "") + " tokens each",
                     fontsize=11)
        png = P.save(fig, a.out / "zipf_exponent.png")

    al_fixed = [p["fixed"].alpha for p in per]
    slope = float(np.polyfit(z, al_fixed, 1)[0]) if len(per) >= 2 else None
    C.finish(a, {
        "per_zipf": [{
            "zipf": p["zipf"], "entropy_floor": p["floor"], "alpha_predicted": p["zipf"] - 1,
            "alpha": p["fixed"].alpha, "alpha_ci": p["fixed"].ci.get("alpha"), "r2": p["fixed"].r2,
            "alpha_E_free": p["free"].alpha, "alpha_E_free_ci": p["free"].ci.get("alpha"),
            "E_free": p["free"].E, "r2_E_free": p["free"].r2,
        } for p in per],
        "d_alpha_d_zipf": slope, "d_alpha_d_zipf_predicted": 1.0,
    }, [png])


if __name__ == "__main__":
    main()
