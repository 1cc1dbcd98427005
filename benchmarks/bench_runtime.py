"""What knobsim.core.runtime buys: huge pages for malloc, and the persistent compilation cache.

    python benchmarks/bench_runtime.py                  # both parts, about 6 minutes
    python benchmarks/bench_runtime.py --part pages --sizes 1e6 --repeats 3

Part "pages": for each size, child processes train whole scanned chunks (batch 32 x 128,
as `make bench`) with and without GLIBC_TUNABLES=glibc.malloc.hugetlb=1, alternating, and
report tokens/s and minor page faults per step (getrusage), medians of --repeats children.
Part "cache": `knobsim train --params 1e5 -q --json` end to end (wall clock of the whole
process), with the compilation cache off, cold (an empty cache folder) and warm (the same
folder again), alternating; the summary's eval loss must be the same bits every time.
Writes benchmarks/results/bench_runtime-<host>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TUNABLE = "glibc.malloc.hugetlb=1"


def child(size: float, steps: int, repeats: int) -> None:
    """Time chunks in this process; print one JSON line."""
    import jax

    from knobsim.data.language import build_language
    from knobsim.data.sampler import device_tables, words_needed
    from knobsim.core.plan import plan_run
    from knobsim.core.programs import build_programs, init_state

    cfg = plan_run(params=int(size), steps=1000, batch=32, seq=128)
    lang = build_language(cfg.language)
    tables = device_tables(lang)
    progs = build_programs(cfg, words_needed(lang, cfg.train.seq))
    state = init_state(cfg, progs)
    state, m = progs.chunk(state, tables, None, steps)
    jax.block_until_ready(m)
    tps, faults = [], []
    for _ in range(repeats):
        r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        state, m = progs.chunk(state, tables, None, steps)
        jax.block_until_ready(m)
        dt = time.perf_counter() - t0
        faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) / steps)
        tps.append(steps * cfg.train.tokens_per_step / dt)
    print(json.dumps({"tokens_per_s": statistics.median(tps), "faults_per_step": statistics.median(faults),
                      "loss": float(m["loss"][-1]), "n_params": cfg.model.n_params_total}))


def run_child(size: str, steps: int, hugepages: bool) -> dict:
    env = dict(os.environ, KNOBSIM_HUGEPAGES="0")  # the child must not re-exec itself
    tun = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t and not t.startswith("glibc.malloc.hugetlb")]
    if hugepages:
        tun.append(TUNABLE)
    env["GLIBC_TUNABLES"] = ":".join(tun)
    out = subprocess.run([sys.executable, __file__, "--child", size, str(steps)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


STEPS = {"1e4": 200, "1e5": 60, "1e6": 12, "1e7": 2}


def part_pages(sizes: list[str], repeats: int) -> list[dict]:
    rows = []
    for size in sizes:
        res = {False: [], True: []}
        for _ in range(repeats):
            for hp in (False, True):
                res[hp].append(run_child(size, STEPS.get(size, 10), hp))
        assert len({r["loss"] for r in res[False] + res[True]}) == 1, "huge pages changed the bits"
        med = {hp: {k: statistics.median(r[k] for r in res[hp]) for k in ("tokens_per_s", "faults_per_step")}
               for hp in res}
        row = {"size": size, "n_params": res[True][0]["n_params"], "off": med[False], "on": med[True],
               "speedup": med[True]["tokens_per_s"] / med[False]["tokens_per_s"],
               "all_off": [r["tokens_per_s"] for r in res[False]], "all_on": [r["tokens_per_s"] for r in res[True]]}
        print(f"{size:>5}: {med[False]['tokens_per_s']:>10,.0f} -> {med[True]['tokens_per_s']:>10,.0f} tok/s "
              f"(x{row['speedup']:.3f}); faults/step {med[False]['faults_per_step']:,.0f} -> "
              f"{med[True]['faults_per_step']:,.0f}", flush=True)
        rows.append(row)
    return rows


def part_cache(repeats: int) -> dict:
    knobsim = [sys.executable, "-m", "knobsim", "train", "--params", "1e5", "-q", "--json"]
    walls = {"off": [], "cold": [], "warm": []}
    losses = set()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            cache = Path(tmp) / f"cache{i}"
            for mode in ("off", "cold", "warm"):
                env = dict(os.environ, KNOBSIM_CACHE=str(cache), KNOBSIM_XLA_CACHE="0" if mode == "off" else "1")
                env.pop("JAX_COMPILATION_CACHE_DIR", None)
                out = Path(tmp) / f"run-{i}-{mode}"
                t0 = time.perf_counter()
                p = subprocess.run(knobsim + ["--out", str(out)], env=env, capture_output=True, text=True, check=True)
                walls[mode].append(time.perf_counter() - t0)
                losses.add(json.loads(p.stdout)["final_eval_loss"])
                print(f"  cache {mode:>4}: {walls[mode][-1]:.1f} s", flush=True)
    assert len(losses) == 1, f"the compilation cache changed the result: {losses}"
    med = {k: statistics.median(v) for k, v in walls.items()}
    print(f"knobsim train --params 1e5, whole process: off {med['off']:.1f} s, cold {med['cold']:.1f} s, "
          f"warm {med['warm']:.1f} s", flush=True)
    return {"command": " ".join(knobsim[2:]), "wall_s_median": med, "wall_s_all": walls,
            "final_eval_loss": losses.pop()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["pages", "cache", "all"], default="all")
    ap.add_argument("--sizes", default="1e5,1e6,1e7")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(float(a.child[0]), int(a.child[1]), repeats=3)
    result = {"machine": {"node": platform.node(), "cpus": os.cpu_count()}, "repeats": a.repeats,
              "date": time.strftime("%Y-%m-%d")}
    if a.part in ("pages", "all"):
        result["pages"] = part_pages(a.sizes.split(","), a.repeats)
    if a.part in ("cache", "all"):
        result["cache"] = part_cache(a.repeats)
    result["machine"]["load_avg_at_end"] = os.getloadavg()
    path = HERE / "results" / f"bench_runtime-{platform.node()}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
