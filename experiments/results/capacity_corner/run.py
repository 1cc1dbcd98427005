"""Issue 22 item 2: does a model's knowledge stop growing with its text (a hard corner
between capacity and data), and how much text does each size need to reach its capacity?

    python experiments/results/capacity_corner/run.py [SIZES] [CHARACTERS] [POOL]

Trains seed 0 of the full run's shapes at its lr (half the default rule from 1e4 knobs,
experiments/_common.FULL_LR_MULTIPLE), batch 16 x 64, the default language, at each of
CHARACTERS (default 16M, 64M, 128M; the full run's own 32M is its seed 0) into
experiments/out/capacity_corner/sweep (resumable), and prints each run's eval loss, the
words it knows (K_eff) and the words its text shows 30 times (K_D), with the full run's.
With POOL (characters), every run trains on one pool of that much text, repeated (the
finite-data mode), into experiments/out/capacity_corner/sweep-pool-POOL: is a size limited
by the text it sees or by its steps? K_D is then the pool's.
"""
import csv
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

import _common as C  # noqa: E402
from knobsim.core import runtime  # noqa: E402
from knobsim.data import ideal  # noqa: E402
from knobsim.data.language import build_language  # noqa: E402
from knobsim.scaling import sweep as S  # noqa: E402

sizes = [int(float(x)) for x in (sys.argv[1] if len(sys.argv) > 1 else "9997,31609,99935").split(",")]
chars = [int(float(x)) for x in (sys.argv[2] if len(sys.argv) > 2 else "16e6,64e6,128e6").split(",")]
pool = int(float(sys.argv[3])) if len(sys.argv) > 3 else 0
runtime.setup()
pts = [S.Point(budget=b, tokens=d, seed=0, pool_tokens=pool, lr=float(C.rule_lr(b) * C.FULL_LR_MULTIPLE[b]))
       for b in sizes for d in chars]
out = HERE.parents[1] / "out" / "capacity_corner" / (f"sweep-pool-{pool / 1e6:g}M" if pool else "sweep")
rows = C.run(pts, C.settings("full"), out, quiet=True)
full = [r for r in csv.DictReader(open(HERE.parent / "scaling_params" / "results.csv")) if r["seed"] == "0"]
lang = build_language()
print(f"{'budget':>8} {'knobs':>9} {'chars':>6} {'eval':>7} {'K_eff':>6} {'K_D':>5}  source")
for b in sizes:
    mine = [(int(r["tokens"]), float(r["final_eval_loss"]), int(r["n_params_total"]), "this sweep")
            for r in rows if int(r["budget"]) == b]
    mine += [(int(r["tokens"]), float(r["final_eval_loss"]), int(r["n_params_total"]), "full run, seed 0")
             for r in full if int(r["budget"]) == b and not pool]
    for d, loss, n, src in sorted(mine):
        print(f"{b:>8} {n:>9,} {d / 1e6:>5.0f}M {loss:.4f} {ideal.k_effective(lang, loss):>6.0f} "
              f"{ideal.learnable_rank(lang, min(d, pool or d)):>5}  {src}"
              + (f", {d / pool:g} passes over a pool of {pool / 1e6:g}M" if pool else ""))
