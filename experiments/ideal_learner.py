"""L*(K): the ideal learner of the K most frequent words, on the default (scale-free) and the
English-like language. No training: exact sums over each language's tables.

    python experiments/ideal_learner.py --quick    # both presets, language seed 0: ~15 s
    python experiments/ideal_learner.py            # + language seeds 0..5 and the levers: ~1.5 min

The ideal learner knows the K most frequent words exactly and spells the rest from letter
frequencies (knobsim.data.ideal). Its loss falls from the letter model's (K = 0) to the
exact entropy floor (K = V). A scaling fit can only find the floor if L*(K) - floor is a
power law: fitted here as L = E + A K^-alpha over K in [10, 3000], E free, and compared with
the exact floor; the local log-log slope of L*(K) - floor in quarter decades says how
straight it is.

Writes to --out (default experiments/out/ideal_learner[-quick]):
  ideal_learner.png   L*(K) of both languages with their floors | L*(K) - floor, log-log, fits
  summary.json        per preset: floor, E, alpha, E's relative error, slope mean and spread,
                      learnable ranks at 1e6 / 1e7 / 1e8 characters; the curve itself;
                      (full mode) the same fit for language seeds 0..5 of the default, and
                      for the default with one field changed at a time (the levers)
"""

from __future__ import annotations

import dataclasses

import numpy as np

import _common as C
from knobsim.config import PRESETS, LanguageConfig
from knobsim.data import ideal
from knobsim.data.language import build_language
from knobsim.scaling import plots as P

MODES = {
    # language configs per preset, extra language seeds of the default, K grid per decade
    "full": dict(presets=PRESETS, seeds=range(6), per_decade=12, levers=True),
    "quick": dict(presets=PRESETS, seeds=(), per_decade=8, levers=False),
    "tiny": dict(presets={"scale-free": LanguageConfig(n_words=4000),
                          "english": dataclasses.replace(PRESETS["english"], n_words=1000)},
                 seeds=(), per_decade=4, levers=False),
}
# The levers that chose the default: the default with one field changed at a time.
LEVERS = [
    {"syllables_per_decade": 0.4}, {"syllables_per_decade": 0.8}, {"syllables_per_decade": 1.6},
    {"n_words": 16_384}, {"n_words": 65_536}, {"n_words": 1 << 20},
    {"zipf": 1.5}, {"zipf": 1.2},
    {"successor_weight": 0.6}, {"successor_weight": 0.2}, {"n_successors": 8}, {"n_successors": 2},
    {"zipf_offset": 0.0},
]
LABELS = {"scale-free": "default (scale-free)", "english": "English-like (--preset english)"}


def points(mode: str) -> dict:
    """preset -> (language, K grid, L*(K))."""
    m = MODES[mode]
    out = {}
    for name, cfg in m["presets"].items():
        lang = build_language(cfg)
        ks = np.r_[0, ideal.k_grid(len(lang.words), m["per_decade"])]
        out[name] = (lang, ks, ideal.ideal_curve(lang, ks))
    return out


def fits(curves: dict, mode: str) -> tuple[dict, list[dict]]:
    per_preset = {name: ideal.fit_ideal(lang) for name, (lang, _, _) in curves.items()}
    seeds = []
    for s in MODES[mode]["seeds"]:
        lang = build_language(dataclasses.replace(MODES[mode]["presets"]["scale-free"], seed=s))
        f = ideal.fit_ideal(lang)
        seeds.append({"language_seed": s, "floor": f.floor, "E": f.E, "E_rel_error": f.rel_error,
                      "alpha": f.alpha, "slope_spread": f.slope_spread})
    levers = []
    for change in LEVERS if MODES[mode]["levers"] else []:
        lang = build_language(dataclasses.replace(MODES[mode]["presets"]["scale-free"], **change))
        f = ideal.fit_ideal(lang)
        levers.append({"change": change, "floor": f.floor, "E_rel_error": f.rel_error, "alpha": f.alpha,
                       "slope_spread": f.slope_spread,
                       "learnable_rank": [ideal.learnable_rank(lang, d) for d in ideal.LEARNABLE_AT]})
    return per_preset, seeds, levers


def figure(curves: dict, fitted: dict, out, title: str):
    with P.style():
        fig, (a1, a2) = P.figure(ncols=2, width=11.0, height=4.4)
        for i, (name, (lang, ks, y)) in enumerate(curves.items()):
            c, f = P.color(i), fitted[name]
            a1.plot(np.maximum(ks, 0.5), y, "o-", color=c, ms=3, lw=1.2, label=f"{LABELS[name]}: L*(K)")
            a1.axhline(lang.entropy_rate, color=c, ls=":", lw=1.1, label=f"its floor {lang.entropy_rate:.3f} (exact)")
            sel = ks >= 1
            a2.plot(ks[sel], y[sel] - lang.entropy_rate, "o", color=c, ms=3, label=f"{LABELS[name]}")
            grid = np.geomspace(f.k_min, f.k_max, 100)
            a2.plot(grid, f.E + f.A * grid ** -f.alpha - lang.entropy_rate, "-", color=c, lw=1.6, alpha=0.8,
                    label=f"E-free fit on [{f.k_min}, {f.k_max:,}]: E {100 * f.rel_error:+.1f}% off, α = {f.alpha:.2f}")
        a1.set_xscale("log")
        a1.set_xlabel("K, words the ideal learner knows (K = 0 drawn at 0.5)")
        a1.set_ylabel("L*(K) (nats/char)")
        a1.set_title("The ideal learner's loss")
        a1.legend(loc="upper right", fontsize=8.5)
        for f in fitted.values():
            a2.axvspan(f.k_min, f.k_max, color="0.92", zorder=0)
        P.loglog(a2, "K, words known", "L*(K) − floor (nats/char)",
                 "Its distance to the floor: a power law only when scale-free")
        a2.legend(loc="lower left", fontsize=8.5)
        fig.suptitle(title, fontsize=11)
        return P.save(fig, out / "ideal_learner.png")


def main():
    a = C.parse(__doc__, "ideal_learner")
    curves = points(a.mode)
    fitted, seeds, levers = fits(curves, a.mode)
    png = figure(curves, fitted, a.out,
                 "The ideal learner of the K most frequent words (exact, no training; shaded: the fitted range)")
    summary = {}
    for name, (lang, ks, y) in curves.items():
        summary[name] = {
            "config": dataclasses.asdict(lang.config), "n_words": len(lang.words),
            **fitted[name].to_dict(),
            "learnable_rank": {f"{d:.0e}": ideal.learnable_rank(lang, d) for d in ideal.LEARNABLE_AT},
            "curve": [{"K": int(k), "loss": float(v)} for k, v in zip(ks, y)],
        }
    d = summary["scale-free"]
    C.finish(a, {
        "E_rel_error": d["E_rel_error"], "alpha": d["alpha"], "slope_spread": d["slope_spread"],
        "entropy_floor": d["floor"],
        "english_E_rel_error": summary["english"]["E_rel_error"],
        **summary, "language_seeds": seeds, "levers": levers,
    }, [png])


if __name__ == "__main__":
    main()
