"""Seeds together (one vmapped program) vs seeds one after another, per model size.

    python benchmarks/bench_seeds.py                       # 1e3, 1e4, 1e5, 1e6; 3 seeds
    python benchmarks/bench_seeds.py --sizes 1e3,1e5 --out /tmp/b.json

For each size, S seeds at batch B each are trained two ways on the same compiled pieces
(train.build_programs): ``chunk`` called once per seed (sequential), and ``chunk_many`` on
the S states stacked on a leading axis (vmapped). Both process S x B sequences per round,
so the total batch is equal and tokens/s compare directly. Steady state first: each
program is compiled and warmed up, then timed chunks alternate between the two ways (so a
burst of load from other processes hits both) and the best of ``--repeats`` is kept.

Then, end to end: a short run through train() (per seed) and train_seeds() (all seeds),
whose wall time less its steady-state compute is the fixed cost of one call (building,
compiling, evaluating). From both: the break-even tokens per seed D*(N) below which
vmapped seeds finish first, S (o_s + D/r_s) = o_v + S D / r_v.

Writes a JSON (default benchmarks/results/bench_seeds.json) with, per size, tokens/s both
ways, the speedup, the per-call overheads and D*(N). knobsim.scaling.sweep.VMAP_BREAK_EVEN is
copied from it (see its comment): a sweep vmaps a size's seeds when their tokens per seed
are at most D*(N), interpolated in log N.

Runtime: 9 minutes for the default sizes on the shared 2-core VM (load ~4; 1e6 dominates).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from knobsim.config import parse_count
from knobsim.data.language import build_language
from knobsim.data.sampler import device_tables, words_needed
from knobsim.core.plan import plan_run
from knobsim.core.programs import build_programs, init_state
from knobsim.core.train import train, train_seeds

DEFAULT_OUT = Path(__file__).parent / "results" / "bench_seeds.json"


def _block(tree):
    jax.block_until_ready(tree)
    return tree


def bench_size(budget: int, seeds: int, batch: int, seq: int, repeats: int, target_s: float) -> dict:
    # The chunk length is chosen so one timed sequential round takes about target_s,
    # from a first rough measurement (small models: many steps; 1e6: a few).
    cfg = plan_run(params=budget, steps=10_000, batch=batch, seq=seq, check_memory=False)
    lang = build_language(cfg.language)
    tables = device_tables(lang)
    progs = build_programs(cfg, words_needed(lang, seq))
    states = [init_state(cfg, progs, seed=s) for s in range(seeds)]

    probe = 4
    t0 = time.perf_counter()
    states[0], _ = _block(progs.chunk(states[0], tables, None, probe))
    compile_seq = time.perf_counter() - t0
    t0 = time.perf_counter()
    states[0], _ = _block(progs.chunk(states[0], tables, None, probe))
    per_step = (time.perf_counter() - t0) / probe
    k = int(min(500, max(2, target_s / (seeds * per_step))))

    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    t0 = time.perf_counter()
    stacked, _ = _block(progs.chunk_many(stacked, tables, None, k))
    compile_vmap = time.perf_counter() - t0  # includes one chunk of k steps
    for i in range(seeds):  # warm the k-step sequential program too
        states[i], _ = _block(progs.chunk(states[i], tables, None, k))

    seq_s, vmap_s = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(seeds):
            states[i], _ = progs.chunk(states[i], tables, None, k)
        _block(states)
        seq_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        stacked, _ = _block(progs.chunk_many(stacked, tables, None, k))
        vmap_s.append(time.perf_counter() - t0)
    tokens = seeds * k * batch * seq
    tps_seq, tps_vmap = tokens / min(seq_s), tokens / min(vmap_s)

    # End to end, as a sweep pays it: train() per seed builds, compiles and evaluates its
    # own program; train_seeds() does that once. A short run of 2 chunks of k steps, timed
    # on a second call (the first in a process also pays jax's one-time start-up); the
    # overhead is its wall time minus the steady-state time of its tokens.
    short = plan_run(params=budget, steps=2 * k, chunk=k, batch=batch, seq=seq, check_memory=False)
    train(short, lang=lang)
    t0 = time.perf_counter()
    train(short, lang=lang)
    wall_one = time.perf_counter() - t0
    over_seq = max(0.0, wall_one - short.train.tokens / tps_seq)
    train_seeds(short, list(range(seeds)), lang=lang)
    t0 = time.perf_counter()
    train_seeds(short, list(range(seeds)), lang=lang)
    wall_many = time.perf_counter() - t0
    over_vmap = max(0.0, wall_many - seeds * short.train.tokens / tps_vmap)
    return {
        "budget": budget,
        "n_params": cfg.model.n_params_total,
        "shape": cfg.model.shape.to_dict(),
        "steps_per_chunk": k,
        "tokens_per_round": tokens,
        "tokens_per_s_sequential": tps_seq,
        "tokens_per_s_vmapped": tps_vmap,
        "speedup": tps_vmap / tps_seq,
        "round_s_sequential": seq_s,
        "round_s_vmapped": vmap_s,
        "compile_s_sequential_probe": compile_seq,
        "compile_s_vmapped_incl_chunk": compile_vmap,
        "short_run_steps": short.train.steps,
        "short_run_wall_s_one_seed": wall_one,
        "short_run_wall_s_vmapped": wall_many,
        "overhead_s_per_call_sequential": over_seq,
        "overhead_s_per_call_vmapped": over_vmap,
        "break_even_tokens_per_seed": break_even(seeds, tps_seq, tps_vmap, over_seq, over_vmap),
    }


def break_even(seeds: int, tps_seq: float, tps_vmap: float, over_seq: float, over_vmap: float):
    """Tokens per seed below which vmapped seeds finish first (inf: always; 0: never).

    Sequential: S (o_s + D / r_s); vmapped: o_v + S D / r_v (r: tokens/s, o: per-call
    overhead). Equal at D* = (S o_s - o_v) / (S / r_v - S / r_s)."""
    fixed = seeds * over_seq - over_vmap
    per_token = seeds / tps_vmap - seeds / tps_seq
    if per_token <= 0:
        return math.inf if fixed >= 0 else 0.0
    return max(0.0, fixed / per_token)


def main():
    from knobsim.core import runtime

    runtime.reexec_with_hugepages()  # as `knobsim` runs (KNOBSIM_HUGEPAGES=0: without)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1e3,1e4,1e5,1e6")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32, help="per seed (the sweep's default)")
    ap.add_argument("--seq", type=int, default=128, help="the sweep's default")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--target-s", type=float, default=4.0, help="seconds per timed sequential round")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args()
    rows = []
    for size in a.sizes.split(","):
        r = bench_size(parse_count(size), a.seeds, a.batch, a.seq, a.repeats, a.target_s)
        rows.append(r)
        print(f"N={r['n_params']:>9,}  sequential {r['tokens_per_s_sequential']:>10,.0f} tok/s  "
              f"vmapped {r['tokens_per_s_vmapped']:>10,.0f} tok/s  speedup {r['speedup']:.2f}x  "
              f"overhead/call {r['overhead_s_per_call_sequential']:.1f} s vs "
              f"{r['overhead_s_per_call_vmapped']:.1f} s  -> vmap up to "
              f"{r['break_even_tokens_per_seed']:,.0f} tokens/seed", flush=True)
    result = {
        "what": "steady-state training tokens/s, S seeds vmapped vs one after another, equal total batch",
        "seeds": a.seeds, "batch_per_seed": a.batch, "seq": a.seq, "repeats": a.repeats,
        "machine": {"node": platform.node(), "cpus": os.cpu_count(), "backend": jax.default_backend(),
                    "device": jax.devices()[0].device_kind,
                    "load_avg_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None},
        "rows": rows,
        # knobsim.scaling.sweep.VMAP_BREAK_EVEN copies (n_params, break_even_tokens_per_seed).
        "break_even": [[r["n_params"], r["break_even_tokens_per_seed"]] for r in rows],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
