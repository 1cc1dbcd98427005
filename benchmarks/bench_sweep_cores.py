"""Sweep throughput on every core: one process on all cores, or one-thread processes side by
side, per model size. Its result decides which points `knobsim sweep` trains on one thread.

    python benchmarks/bench_sweep_cores.py                     # 1e3, 1e4, 3e4, 1e5, 3e5 knobs
    python benchmarks/bench_sweep_cores.py --sizes 1e4,1e5 --tokens 300k --out /tmp/c.json

With C = the cores this process may use, each size trains C runs (seeds 0..C-1, batch 16 x
64, --tokens each) two ways, through the sweep's own worker processes
(knobsim.scaling.workers), so that each way pays what a sweep pays (compiling in a fresh
process, the first evaluation):

    all   one worker on C threads trains the C runs one after another;
    one   C workers of one thread each (not pinned: see workers.Pool._workers), a run each at once.

Sweep throughput is C x tokens over the wall time from the first run's start to the last
run's end (inside the workers: process start-up, paid once per sweep, is left out). The two
ways alternate for --repeats turns (a burst of load from elsewhere hits both), each turn in
fresh processes and without the persistent compilation cache; medians are kept. All C runs
are of one size, so the one-thread side compiles the same programs C times at once, where a
sweep of several sizes starts different sizes side by side (workers._pick): the break-even it
gives errs towards all cores.

Also, per way: steady-state tokens/s (each run's summary.json, after its first chunk; the
one-thread runs' summed) and CPU use per process (CPU seconds over wall seconds). A
one-thread worker must stay at or under 1.0 and the all-core one go above it: the thread
counts, verified by measurement.

Writes --out (default benchmarks/results/bench_sweep_cores-<host>.json): per size both ways,
"ratios" [[n_params, one/all sweep throughput], ...] and "one_thread_up_to", the size up to
which one-thread processes finish a sweep first (knobsim.scaling.points.one_thread_up_to).
Copy "ratios" into knobsim.scaling.points.CORES_BREAK_EVEN, or pass the file to
`knobsim sweep --cores-bench FILE`.

Needs an idle machine: anything else running takes cores from one way or the other. The
load average before and after is in the JSON. Runtime with the defaults: roughly 15-25
minutes on a 2-core VM (3e5 knobs dominates).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from knobsim.config import format_count, parse_count
from knobsim.core import hardware, runtime
from knobsim.core.plan import plan_run
from knobsim.io import rundir as record
from knobsim.scaling.points import one_thread_up_to
from knobsim.scaling.progress import Reporter
from knobsim.scaling.workers import Pool, make_unit

HERE = Path(__file__).resolve().parent


def one_turn(budget: int, tokens: int, threads: int, cores: int, batch: int, seq: int) -> dict:
    """C runs of this size on `threads` threads each, in fresh workers; what they took."""
    with tempfile.TemporaryDirectory(prefix="bench-sweep-cores-") as tmp:
        units = []
        for seed in range(cores):
            cfg = plan_run(params=budget, tokens=tokens, batch=batch, seq=seq, seed=seed)
            path = Path(tmp) / f"s{seed}"
            units.append(make_unit(f"seed {seed}", [cfg], [path], [{"seed": seed}], False, threads))
        with Pool(jobs=cores, inline=False) as pool:
            pool.run(units, Reporter(), None)
        timing = [t for _, t in pool.finished]
        steady = [record.read_json(Path(u.paths[0]) / "summary.json")["tokens_per_s"]
                  for u, _ in pool.finished]
    wall = max(t["end"] for t in timing) - min(t["start"] for t in timing)
    return {
        "wall_s": wall,
        "tokens_per_s": cores * tokens / wall,
        # side by side the runs' own rates add up; one after another each has the whole machine
        "steady_tokens_per_s": sum(steady) if threads == 1 else statistics.mean(steady),
        "cpu_per_wall": max(t["cpu_s"] / t["wall_s"] for t in timing),
        "n_params": units[0].cfgs[0].model.n_params_total,
    }


def bench_size(budget: int, a, cores: int) -> dict:
    turns = {"all": [], "one": []}
    for i in range(a.repeats):
        for way in (("all", "one") if i % 2 == 0 else ("one", "all")):
            threads = cores if way == "all" else 1
            turns[way].append(one_turn(budget, a.tokens, threads, cores, a.batch, a.seq))
    med = {way: {k: statistics.median(t[k] for t in ts) for k in ts[0] if k != "n_params"}
           for way, ts in turns.items()}
    return {
        "budget": budget, "n_params": turns["all"][0]["n_params"],
        "all": {**med["all"], "turns": turns["all"]}, "one": {**med["one"], "turns": turns["one"]},
        "ratio": med["one"]["tokens_per_s"] / med["all"]["tokens_per_s"],
        "steady_ratio": med["one"]["steady_tokens_per_s"] / med["all"]["steady_tokens_per_s"],
    }


def main():
    runtime.reexec_with_hugepages()  # as `knobsim` runs (KNOBSIM_HUGEPAGES=0: without)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1e3,1e4,3e4,1e5,3e5", help="knob budgets")
    ap.add_argument("--tokens", type=parse_count, default=300_000, help="tokens per run")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3, help="turns per way (medians kept)")
    ap.add_argument("--out", type=Path, default=None,
                    help="the JSON to write (default benchmarks/results/bench_sweep_cores-<host>.json)")
    a = ap.parse_args()
    cores = runtime.cores()
    if cores < 2:
        sys.exit("bench_sweep_cores: this process may use 1 core: nothing to put side by side")
    # every turn compiles as a sweep's first run of a shape does
    os.environ["KNOBSIM_XLA_CACHE"] = "0"
    os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
    for name in (runtime.THREADS_ENV, "NPROC"):
        os.environ.pop(name, None)  # the workers' threads are set per way
    load_before = os.getloadavg()
    rows = []
    print(f"{cores} cores; {format_count(a.tokens)} tokens per run, batch {a.batch} x {a.seq}, "
          f"{a.repeats} turns per way")
    for size in a.sizes.split(","):
        r = bench_size(parse_count(size), a, cores)
        rows.append(r)
        print(f"N={r['n_params']:>9,}  all cores {r['all']['tokens_per_s']:>9,.0f} tok/s "
              f"(cpu/wall {r['all']['cpu_per_wall']:.2f})  {cores} x one thread "
              f"{r['one']['tokens_per_s']:>9,.0f} tok/s (cpu/wall {r['one']['cpu_per_wall']:.2f})  "
              f"ratio {r['ratio']:.2f}  steady {r['steady_ratio']:.2f}", flush=True)
    ratios = [[r["n_params"], r["ratio"]] for r in rows]
    result = {
        "what": "sweep throughput, C one-thread processes side by side over one process on C threads",
        "cores": cores, "cpu": hardware.cpu_info(), "machine": hardware.machine_id(),
        "tokens": a.tokens, "batch": a.batch, "seq": a.seq, "repeats": a.repeats,
        "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
        "rows": rows,
        # knobsim.scaling.points.CORES_BREAK_EVEN copies these; --cores-bench reads them
        "ratios": ratios,
        "one_thread_up_to": one_thread_up_to(ratios),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out = a.out or HERE / "results" / f"bench_sweep_cores-{platform.node() or 'host'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"one thread up to {result['one_thread_up_to']:,.0f} knobs; wrote {out}")


if __name__ == "__main__":
    main()
