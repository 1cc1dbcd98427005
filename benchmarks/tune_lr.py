"""Learning-rate grid per size, on a short budget: the data behind optim.default_lr.

    python benchmarks/tune_lr.py --sizes 1e3,1e4,1e5 --lrs 1e-3,3e-3,1e-2,3e-2 --tokens 1e6
    python benchmarks/tune_lr.py --sizes 1e5 --tokens 2M --shapes 16x64,32x64,32x128 --seeds 0,1

Prints one line per (size, shape, lr) with the final eval loss (the mean over --seeds) and
the training throughput, and per size and shape the best lr. With several --shapes (tokens
per step, BATCHxSEQ) it answers "does a larger step reach the same loss in less time?":
the same tokens, fewer steps. Each seq is scored on its own eval text (the language's eval
stream cut at that length), so losses at different seq differ a little by context alone.
Runtime: about 4 minutes for the default grid on a 2-core laptop.
"""

from __future__ import annotations

import argparse
import json
import statistics

from knobsim.config import parse_count
from knobsim.core.plan import plan_run
from knobsim.core.train import train


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="transformer")
    ap.add_argument("--sizes", default="1e3,1e4,1e5")
    ap.add_argument("--lrs", default="1e-3,3e-3,1e-2,3e-2")
    ap.add_argument("--tokens", default="1e6")
    ap.add_argument("--seeds", default="0", help="comma-separated; the loss is their mean")
    ap.add_argument("--shapes", default="16x64", help="tokens per step as BATCHxSEQ, comma-separated")
    ap.add_argument("--json", help="write all results here")
    a = ap.parse_args()
    from bench_train import parse_shapes

    try:
        shapes = parse_shapes(a.shapes)
    except ValueError as e:
        ap.exit(2, f"error: {e}\n")
    seeds = [int(x) for x in a.seeds.split(",")]
    results = []
    for size in a.sizes.split(","):
        n = parse_count(size)
        for batch, seq in shapes:
            best = None
            for lr in map(float, a.lrs.split(",")):
                runs = []
                for seed in seeds:
                    cfg = plan_run(params=n, arch=a.arch, tokens=parse_count(a.tokens), lr=lr, seed=seed,
                                   batch=batch, seq=seq)
                    s = train(cfg)
                    runs.append({"budget": n, "n_params": cfg.model.n_params_total, "batch": batch, "seq": seq,
                                 "steps": cfg.train.steps, "lr": lr, "seed": seed,
                                 "eval_loss": s["final_eval_loss"], "tokens_per_s": s.get("tokens_per_s")})
                results += runs
                loss = statistics.mean(r["eval_loss"] for r in runs)
                tps = statistics.median(r["tokens_per_s"] or 0 for r in runs)
                each = " ".join(f"{r['eval_loss']:.4f}" for r in runs)
                print(f"N={runs[0]['n_params']:>9,} {batch}x{seq} lr={lr:<8g} eval={loss:.4f} (seeds {each}) "
                      f"{tps:,.0f} tok/s", flush=True)
                if best is None or loss < best[1]:
                    best = (lr, loss)
            print(f"best for {size} at {batch}x{seq}: lr={best[0]:g} eval={best[1]:.4f}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
