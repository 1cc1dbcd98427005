"""How one training run uses the cores: knobsim (XLA:CPU) and PyTorch, one thread against all.

    python benchmarks/bench_threads.py                                  # 1e4,1e5 at 32x128 and 16x64
    python benchmarks/bench_threads.py --sizes 1e5,1e6 --shape 16x64 --repeats 5

A machine's second core helps a framework only as far as its small ops split across
threads. For each size and shape, every configuration below trains the same chunk of
steps as bench_train.py in a fresh child process (threads and devices are fixed when a
backend starts), in turns (each configuration once, then again), and the median of the
turns is kept:

  knobsim 1 thread     PJRT_NPROC=1: XLA:CPU's thread pool of one thread
  knobsim C threads    the default: one pool thread per core
  knobsim C devices    XLA_FLAGS=--xla_force_host_platform_device_count=C and
                       plan_run(devices=C): data-parallel over C CPU devices
  torch 1 thread       PyTorch eager (bench_train's twin), torch.set_num_threads(1)
  torch C threads      PyTorch eager on every core

and the speed-up of all cores over one thread is printed per framework. Writes
benchmarks/results/bench_threads-<host>-<cpu>.json (or --out). Nothing else may run:
see docs/performance.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = ("knobsim-1t", "knobsim-Ct", "knobsim-Cd", "torch-1t", "torch-Ct")


def child_env(config: str, cores: int) -> dict:
    env = dict(os.environ)
    for k in ("PJRT_NPROC", "NPROC"):
        env.pop(k, None)
    if config == "knobsim-1t":
        env["PJRT_NPROC"] = "1"
    if config == "knobsim-Cd":
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={cores}").strip()
    return env


def steps_for(n_params: int, tokens_per_step: int) -> int:
    """About a second or two of training per timed repeat on a 2-core CPU."""
    return int(min(200, max(3, 4e10 / (6 * n_params * tokens_per_step))))


def run_child(config: str, size: str, batch: int, seq: int, cores: int) -> dict:
    """Tokens/s of one configuration (median of 3 timed chunks after a warm-up), and the
    threads and devices it really ran with."""
    import jax

    from knobsim.config import parse_count
    from knobsim.core.plan import plan_run

    devices = cores if config == "knobsim-Cd" else 1
    cfg = plan_run(params=parse_count(size), steps=1000, batch=batch, seq=seq, devices=devices)
    steps = steps_for(cfg.model.n_params_total, cfg.train.tokens_per_step)
    if config.startswith("torch"):
        import torch

        from bench_train import torch_timer

        timed = torch_timer(cfg, steps, compile_=False)
        torch.set_num_threads(1 if config == "torch-1t" else cores)
    else:
        from bench_train import knobsim_timer

        if devices > 1 and len(jax.devices()) < devices:
            raise SystemExit(f"{config}: {len(jax.devices())} devices, wanted {devices}")
        timed = knobsim_timer(cfg, steps)
    timed()
    tps = statistics.median(timed() for _ in range(3))
    if config.startswith("torch"):
        return {"tokens_per_s": tps, "threads": torch.get_num_threads(), "devices": 1}
    from knobsim.core import runtime

    return {"tokens_per_s": tps, "threads": runtime.pool_threads(), "devices": len(jax.devices())}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1e4,1e5")
    ap.add_argument("--shape", default="32x128,16x64", help="BATCHxSEQ, comma-separated")
    ap.add_argument("--repeats", type=int, default=3, help="turns per configuration (median kept)")
    ap.add_argument("--configs", default=",".join(CONFIGS), help="a subset of " + ",".join(CONFIGS))
    ap.add_argument("--out", default=None, help="the JSON to write (default benchmarks/results/...)")
    ap.add_argument("--child", nargs=4, metavar=("CONFIG", "SIZE", "BxT", "CORES"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        config, size, shape, cores = a.child
        batch, seq = (int(x) for x in shape.split("x"))
        from knobsim.core import runtime

        runtime.setup()
        print(json.dumps(run_child(config, size, batch, seq, int(cores))))
        return

    configs = [c for c in a.configs.split(",") if c]
    bad = [c for c in configs if c not in CONFIGS]
    if bad:
        ap.exit(2, f"error: --configs: unknown {', '.join(bad)}; choose from {', '.join(CONFIGS)}\n")
    from bench_train import cpu_tag, parse_shapes
    from knobsim.core import hardware

    try:
        shapes = parse_shapes(a.shape)
    except ValueError as e:
        ap.exit(2, f"error: {e}\n")
    if any(c.startswith("torch") for c in configs):
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch not installed (pip install -e '.[bench]'): knobsim only")
            configs = [c for c in configs if not c.startswith("torch")]
    cores = os.cpu_count() or 1
    cpu = hardware.cpu_info()
    print(f"CPU: {cpu['model']}, {cores} cores; features: {' '.join(cpu['flags']) or 'none of note'}")
    rows = []
    for size, (batch, seq) in itertools.product(a.sizes.split(","), shapes):
        runs, ran = {c: [] for c in configs}, {}
        for _, c in itertools.product(range(a.repeats), configs):
            p = subprocess.run([sys.executable, __file__, "--child", c, size, f"{batch}x{seq}", str(cores)],
                               env=child_env(c, cores), capture_output=True, text=True)
            if p.returncode:
                raise SystemExit(f"{c} {size} {batch}x{seq} failed:\n{p.stderr[-2000:]}")
            got = json.loads(p.stdout.strip().splitlines()[-1])
            runs[c].append(got["tokens_per_s"])
            ran[c] = {"threads": got["threads"], "devices": got["devices"]}
        row = {"budget": size, "batch": batch, "seq": seq,
               **{c: statistics.median(v) for c, v in runs.items()}, "all": runs, "ran_with": ran}
        for fw in ("knobsim", "torch"):
            if f"{fw}-1t" in row and f"{fw}-Ct" in row:
                row[f"{fw}_speedup"] = row[f"{fw}-Ct"] / row[f"{fw}-1t"]
        rows.append(row)
        print(f"{size} {batch}x{seq}: " + "  ".join(f"{c} {row[c]:,.0f}" for c in configs)
              + "".join(f"  {fw} x{row[fw + '_speedup']:.2f}" for fw in ("knobsim", "torch")
                        if fw + "_speedup" in row), flush=True)
    name = f"bench_threads-{platform.node()}-{cpu_tag(cpu)}.json"
    out = Path(a.out or HERE / "results" / name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": hardware.machine_id(), "cpu": cpu, "cores": cores,
                               "repeats": a.repeats, "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
