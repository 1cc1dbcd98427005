"""What watching the knobs costs: training tokens/s with and without recording.

    python benchmarks/bench_watch.py                     # 1e6 knobs, 60 steps, 3 repeats
    python benchmarks/bench_watch.py --params 1e5 --repeats 5

Each repeat trains the same config twice, unwatched then watched (interleaved, so drifts in
machine load hit both alike), through the real host loop `train.train` into a real run
directory: the watched run computes the knob statistics in the jit every step, writes them
and the dials per chunk, and writes lossless snapshots at steps 1, 2, 4, ... exactly as
`knobsim train` does by default. Throughput is timed from the end of the first full chunk
(compilation excluded) to the end of the second-to-last (the final evaluation and the
params.npz excluded), so both modes cover the same steps; the watched window still holds
two snapshots and extra chunk boundaries in 36 steps, more than a default-length run has
per step (a conservative estimate). Reports medians and the overhead in percent, and
writes benchmarks/results/bench_watch-<host>.json. Runtime: about 4 minutes at 1e6 on a
2-core laptop (3 repeats). Measured there with --repeats 5: 24,992 vs 24,212 tokens/s,
watching costs 3.1%.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from knobsim.config import parse_count
from knobsim.watch.stats import WatchConfig
from knobsim.io.rundir import RunDir
from knobsim.core.plan import plan_run
from knobsim.core.train import train


def timed_run(cfg, watch, root: Path, name: str, t_lo: int, t_hi: int) -> float:
    """tokens/s between the chunk reports at steps t_lo and t_hi."""
    stamps = {}

    def on_chunk(r):
        stamps[r.step] = time.perf_counter()

    run = RunDir.create(root / name)
    train(cfg, run=run, on_chunk=on_chunk, watch=watch)
    shutil.rmtree(run.path)
    return (t_hi - t_lo) * cfg.train.tokens_per_step / (stamps[t_hi] - stamps[t_lo])


def main():
    from knobsim.core import runtime

    runtime.reexec_with_hugepages()  # as `knobsim` runs (KNOBSIM_HUGEPAGES=0: without)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="1e6")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--chunk", type=int, default=12, help="steps per chunk (knobsim's default "
                    "for 1e6 knobs: 489 steps / 40 chunks -> 12)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    a = ap.parse_args()
    n = parse_count(a.params)
    cfg = plan_run(params=n, steps=a.steps, chunk=a.chunk, batch=a.batch, seq=a.seq,
                   eval_every=a.steps)
    t_lo, t_hi = a.chunk, (a.steps // a.chunk - 1) * a.chunk
    print(f"{cfg.model.n_params_total:,} knobs, batch {a.batch} x seq {a.seq}, {a.steps} steps in "
          f"chunks of {a.chunk}; timing steps {t_lo}..{t_hi}", flush=True)
    res = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeats):
            for mode in ("off", "on"):
                w = WatchConfig() if mode == "on" else None
                tps = timed_run(cfg, w, Path(tmp), f"{mode}{i}", t_lo, t_hi)
                res[mode].append(tps)
                print(f"  repeat {i} watch {mode:>3}: {tps:,.0f} tokens/s", flush=True)
    off, on = statistics.median(res["off"]), statistics.median(res["on"])
    overhead = 100 * (off - on) / off
    print(f"median tokens/s: unwatched {off:,.0f}, watched {on:,.0f}: watching costs {overhead:.1f}% "
          f"of throughput at {cfg.model.n_params_total:,} knobs")
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"bench_watch-{platform.node() or 'host'}.json"
    path.write_text(json.dumps({
        "n_params": cfg.model.n_params_total, "batch": a.batch, "seq": a.seq, "steps": a.steps,
        "chunk": a.chunk, "timed_steps": [t_lo, t_hi], "tokens_per_s_unwatched": res["off"],
        "tokens_per_s_watched": res["on"], "median_unwatched": off, "median_watched": on,
        "overhead_pct": overhead, "watch": "WatchConfig() defaults: every step, 8 dials per "
        "tensor, log-spaced snapshots"}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
