"""Issue 22, item 1: does tuning the lr straighten the full run's L(N)?

    python experiments/results/lr_full_budget/refit.py [N_TOTALS]     # default 9962,31624,99935

Refits the full run's E-free law (from 3.2e3 knobs, as scaling_params' full mode does, 200
bootstrap resamples) with the rule's runs at the sizes N_TOTALS replaced by this folder's
half-rule runs (all their seeds and characters), and prints both fits. A size of N_TOTALS
the full run does not have (1e6 knobs: 1000212) is added from this folder's half-rule runs.
Trains nothing (~2 min).
"""
import csv
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
from knobsim import scaling  # noqa: E402
from knobsim.core.optim import default_lr  # noqa: E402

FIT_FROM = 3000  # experiments/_common.py LN_SWEEP["full"]["fit_from"]


def read(path):
    return list(csv.DictReader(open(path)))


def fit(rows):
    rows = [r for r in rows if int(r["n_params_total"]) >= FIT_FROM]
    n = np.array([float(r["n_params_total"]) for r in rows])
    loss = np.array([float(r["final_eval_loss"]) for r in rows])
    return len(rows), scaling.fit_power_law(n, loss, var="n", bootstrap=200)


def show(name, rows, floor):
    k, f = fit(rows)
    (e_lo, e_hi), (a_lo, a_hi) = f.ci["E"], f.ci["alpha"]
    print(f"{name}: {k} runs, E {f.E:.4f} [{e_lo:.4f}, {e_hi:.4f}] ({100 * (f.E / floor - 1):+.1f}% of the floor "
          f"{floor:.4f}), alpha {f.alpha:.3f} [{a_lo:.3f}, {a_hi:.3f}], R^2 {f.r2:.4f}")


def main():
    full = read(HERE.parent / "scaling_params_rule_lr" / "results.csv")
    lr = read(HERE / "results.csv")
    want = set((sys.argv[1] if len(sys.argv) > 1 else "9962,31624,99935").split(","))

    def half_rule(r):
        rule = default_lr("transformer", int(r["n_params_total"]))
        return abs(float(r["lr"]) / rule - 0.5) < 0.01

    half = [r for r in lr if r["n_params_total"] in want and half_rule(r)]
    tuned = [r for r in full if r["n_params_total"] not in want] + half
    floor = float(full[0]["entropy_floor"])
    show("the full run (the rule's lr)", full, floor)
    chars = sorted({(int(r["n_params_total"]), int(r["tokens"])) for r in half})
    print(f"replaced by (or added as) half-rule runs: {len(half)} runs, (knobs, characters) "
          f"{', '.join(f'({n}, {d / 1e6:g}M)' for n, d in chars)}")
    show("with them", tuned, floor)


if __name__ == "__main__":
    main()
