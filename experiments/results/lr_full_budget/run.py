"""Issue 22 item 1: is the default lr rule right at the full run's budgets (32M characters)?

    python experiments/results/lr_full_budget/run.py [SIZES] [MULTIPLES] [SEEDS] [CHARACTERS]

Trains the full run's small points (SEEDS seeds, default 3, CHARACTERS characters, default 32M,
batch 16 x 64, the default language) at multiples of the default lr rule, into experiments/out/lr_full_budget/sweep
(resumable), and prints the mean eval loss per size and lr. The rule's own runs are the
full run's (experiments/results/scaling_params_rule_lr/results.csv: the earlier full mode, the rule's lr).
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

import numpy as np  # noqa: E402

import _common as C  # noqa: E402
from knobsim.core import runtime  # noqa: E402
from knobsim.scaling import sweep as S  # noqa: E402

sizes = [int(float(x)) for x in (sys.argv[1] if len(sys.argv) > 1 else "1000,3162").split(",")]
mults = [float(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "0.25,0.5,2").split(",")]
n_seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
tokens = int(float(sys.argv[4])) if len(sys.argv) > 4 else C.FULL_MIN_TOKENS
runtime.setup()
pts = []
for b in sizes:
    rule = C.rule_lr(b)
    for m in mults:
        pts += [S.Point(budget=b, tokens=tokens, seed=s, lr=float(rule * m)) for s in range(n_seeds)]
out = HERE.parents[1] / "out" / "lr_full_budget" / "sweep"
rows = C.run(pts, C.settings("full"), out, quiet=True)
for b in sizes:
    for r_lr in sorted({r["lr"] for r in rows if r["budget"] == b}):
        ls = [r["final_eval_loss"] for r in rows if r["budget"] == b and r["lr"] == r_lr]
        print(f"budget {b:>8} lr {r_lr:.5f} eval {np.mean(ls):.4f} seeds {' '.join(f'{x:.4f}' for x in ls)}")
