"""How far E of the L(N, D) fit moves when only some of the committed runs are fitted.

    python experiments/results/isoflop/subsets.py      # 5 fits: ~6 min on 2 idle cores (Zen 4)

The committed results.csv beside this file, fitted as isoflop.py fits it
(knobsim.scaling.fit_chinchilla, Hoffmann et al.'s start grid) but without the bootstrap, on
all runs and on four subsets: runs of at least 500 or 1000 steps, runs whose loss is below
1.0, runs with at least 50 characters per knob. Prints the README's table rows. No subset
is chosen by isoflop.py: the command fits every run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knobsim import scaling
from knobsim.scaling import sweep as S

HERE = Path(__file__).resolve().parent
SUBSETS = {
    "all": lambda r: True,
    "≥ 500 steps": lambda r: r["steps"] >= 500,
    "≥ 1000 steps": lambda r: r["steps"] >= 1000,
    "loss < 1.0": lambda r: r["final_eval_loss"] < 1.0,
    "D / N ≥ 50": lambda r: r["tokens"] / r["n_params_total"] >= 50,
}


def main():
    rows = S.read_rows(HERE / "results.csv")
    floor = rows[0]["entropy_floor"]
    print("| runs fitted | rows | E | E − floor | α | β | a | R² |")
    print("|---|---|---|---|---|---|---|---|")
    for name, keep in SUBSETS.items():
        rs = [r for r in rows if keep(r)]
        n, d, loss = (np.array([r[k] for r in rs], float) for k in ("n_params_total", "tokens", "final_eval_loss"))
        f = scaling.fit_chinchilla(n, d, loss, bootstrap=0, grid="chinchilla")
        print(f"| {name} | {len(rs)} | {f.E:.4f} | {100 * (f.E / floor - 1):+.1f}% | {f.alpha:.2f} | "
              f"{f.beta:.2f} | {f.a:.2f} | {f.r2:.3f} |", flush=True)


if __name__ == "__main__":
    main()
