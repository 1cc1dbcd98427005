"""Fits and figures of a scaling_params full run that has not finished: what
`python experiments/scaling_params.py` would print and draw, from the runs done so far,
without training the rest.

    python experiments/results/scaling_params_partial/summarize.py [RESULTS_CSV] [OUT_DIR]

Defaults: experiments/out/scaling_params/sweep/results.csv, and this folder. Writes
summary.json (the script's keys, plus the E-free fit from 3.2e3 knobs up, where K_eff >= 10),
scaling_params.png and real_vs_ideal.png.
"""

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT / "experiments"))

import scaling_params as sp  # noqa: E402
from knobsim import scaling  # noqa: E402
from knobsim.config import PRESETS  # noqa: E402
from knobsim.scaling import plots as P  # noqa: E402
from knobsim.scaling import sweep as S  # noqa: E402


def main():
    csv = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "experiments/out/scaling_params/sweep/results.csv"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE
    rows = S.read_rows(csv)
    language = PRESETS["scale-free"]
    free, fixed, floor = sp.fits(rows, 200)
    big = [r for r in rows if r["n_params_total"] >= 3000]
    n = np.array([r["n_params_total"] for r in big], float)
    free3 = scaling.fit_power_law(n, np.array([r["final_eval_loss"] for r in big]), var="n", bootstrap=200)
    ns, mean, sd, k = P.seed_stats(rows)
    d = sorted({r["tokens"] for r in rows})
    dtext = f"D = {d[0]:,}" if len(d) == 1 else f"D = {d[0]:,}..{d[-1]:,}"
    title = f"Loss vs parameters (full mode, partial): {len(ns)} sizes, {len(rows)} runs, {dtext} characters"
    kfit = sp.knowledge_fit(rows, 200, language)
    pngs = [sp.figure(rows, free, fixed, floor, out, title)]
    if kfit is not None:
        pngs.append(sp.figure_knowledge(rows, kfit, floor, out, title, language, free3))
    summary = {
        "runs": len(rows), "entropy_floor": floor,
        "alpha": free.alpha, "alpha_ci": free.ci.get("alpha"), "r2": free.r2,
        "E_fit": free.E, "E_fit_ci": free.ci.get("E"),
        "from_3e3": {"runs": len(big), "alpha": free3.alpha, "alpha_ci": free3.ci.get("alpha"),
                     "E_fit": free3.E, "E_fit_ci": free3.ci.get("E"), "r2": free3.r2,
                     "E_fit_minus_floor_rel": free3.E / floor - 1},
        "alpha_floor_fixed": fixed.alpha, "alpha_floor_fixed_ci": fixed.ci.get("alpha"),
        "per_size": [{"n_params": int(a), "loss_mean": float(m), "loss_sd": float(s), "seeds": int(c),
                      "k_eff": ke} for a, m, s, c, ke in zip(ns, mean, sd, k, sp.known_words(mean, language))],
        "ideal_alpha": sp.ideal_fit(language).alpha, "k_eff_fit": kfit,
        "tokens": d, "figures": [p.name for p in pngs],
    }
    from knobsim.io import rundir as record

    record.write_json_atomic(out / "summary.json", record.clean_json(summary))
    print(json.dumps({k: v for k, v in record.clean_json(summary).items() if k not in ("per_size", "k_eff_fit")}, indent=1))



if __name__ == "__main__":
    main()
