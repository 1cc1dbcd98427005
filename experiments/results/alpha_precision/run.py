"""How many decades of N does the E-free fit need for alpha within +-0.05? (issue 22, item 2)

    python experiments/results/alpha_precision/run.py     # trains nothing; ~15 min on 2 busy cores

The cheapest instrument before a longer sweep: synthetic L(N) points built from the exact
ideal learner of the default language mapped through the measured K_eff = c N^gamma of the
full run (c, gamma from experiments/results/scaling_params_rule_lr/scaling_params/summary.json), with Gaussian
seed noise of the measured relative size, at half-decade sizes from 3.16e3 knobs up over 2,
2.5, 3 and 3.5 decades, 3 or 6 seeds each. Each is fitted exactly as scaling_params fits its
runs (knobsim.scaling.fit_power_law, E free, BOOT bootstrap resamples); repeated over noise
draws, it reports the median 95% interval of alpha and E's error against the floor.
Writes summary.json beside this file.
"""
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]

from knobsim import scaling  # noqa: E402
from knobsim.config import PRESETS  # noqa: E402
from knobsim.data import ideal  # noqa: E402
from knobsim.data.language import build_language  # noqa: E402

DRAWS = 3  # noise draws per design
N0 = 10 ** 3.5
BOOT = 100  # resamples per fit (scaling_params uses 200; 100 to keep this cheap)


def main():
    src = ROOT / "experiments/results/scaling_params_rule_lr/scaling_params/summary.json"
    if not src.is_file():
        src = ROOT / "experiments/results/scaling_params_partial/summary.json"
    s = json.loads(src.read_text())
    c, gamma = s["k_eff_fit"]["c"], s["k_eff_fit"]["gamma"]
    sizes = [r for r in s["per_size"] if r["n_params"] >= 3000]
    noise = float(np.median([r["loss_sd"] / r["loss_mean"] for r in sizes]))
    lang = build_language(PRESETS["scale-free"])
    floor = lang.entropy_rate
    ks = np.r_[0, ideal.k_grid(len(lang.words), 16)]
    curve = ideal.ideal_curve(lang, ks)

    def law(n):
        return np.exp(np.interp(np.log(c * n ** gamma), np.log(np.maximum(ks, 1e-9)), np.log(curve)))

    rng = np.random.default_rng(0)
    out = []
    for decades in (2.0, 2.5, 3.0, 3.5):
        n_sizes = int(round(decades * 2)) + 1
        ns = N0 * 10 ** (0.5 * np.arange(n_sizes))
        for seeds in ((3, 6) if decades == 2.0 else (3,)):
            n = np.repeat(ns, seeds)
            width, e_err, alphas = [], [], []
            for _ in range(DRAWS):
                loss = law(n) * (1 + noise * rng.standard_normal(n.size))
                f = scaling.fit_power_law(n, loss, var="n", bootstrap=BOOT)
                lo, hi = f.ci["alpha"]
                width.append((hi - lo) / 2)
                e_err.append(f.E / floor - 1)
                alphas.append(f.alpha)
            row = {"decades": decades, "n_max": float(ns[-1]), "seeds": seeds,
                   "alpha_half_width_median": float(np.median(width)),
                   "alpha_median": float(np.median(alphas)),
                   "E_rel_error_median": float(np.median(e_err)),
                   "E_rel_error_max": float(np.max(np.abs(e_err)))}
            print(json.dumps(row), flush=True)
            out.append(row)
            summary = {"source": str(src.relative_to(ROOT)), "c": c, "gamma": gamma,
                       "relative_seed_noise": noise, "floor": floor, "draws": DRAWS,
                       "bootstrap": BOOT, "n_min": N0, "designs": out,
                       "alpha_of_the_law": gamma * ideal.fit_ideal(lang).alpha}
            # after every design: a stopped run keeps what it measured
            (HERE / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
