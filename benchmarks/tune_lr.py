"""Learning-rate grid per size, on a short budget: the data behind optim.default_lr.

    python benchmarks/tune_lr.py --sizes 1e3,1e4,1e5 --lrs 1e-3,3e-3,1e-2,3e-2 --tokens 1e6

Prints one line per (size, lr) with the final eval loss and, per size, the best lr.
Runtime: about 4 minutes for the default grid on a 2-core laptop.
"""

from __future__ import annotations

import argparse
import json

from knobsim.config import parse_count
from knobsim.core.plan import plan_run
from knobsim.core.train import train


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="transformer")
    ap.add_argument("--sizes", default="1e3,1e4,1e5")
    ap.add_argument("--lrs", default="1e-3,3e-3,1e-2,3e-2")
    ap.add_argument("--tokens", default="1e6")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write all results here")
    a = ap.parse_args()
    results = []
    for size in a.sizes.split(","):
        n = parse_count(size)
        best = None
        for lr in map(float, a.lrs.split(",")):
            cfg = plan_run(params=n, arch=a.arch, tokens=parse_count(a.tokens), lr=lr, seed=a.seed)
            s = train(cfg)
            results.append({"budget": n, "n_params": cfg.model.n_params_total, "lr": lr,
                            "eval_loss": s["final_eval_loss"]})
            print(f"N={cfg.model.n_params_total:>9,} lr={lr:<8g} eval={s['final_eval_loss']:.4f}", flush=True)
            if best is None or s["final_eval_loss"] < best[1]:
                best = (lr, s["final_eval_loss"])
        print(f"best for {size}: lr={best[0]:g} eval={best[1]:.4f}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
