"""Where a training step's time goes, per size: an XLA op breakdown from the JAX profiler.

    python benchmarks/profile_step.py                      # 1e4,1e5,1e6,1e7 at 32 x 128
    python benchmarks/profile_step.py --sizes 1e5 --batch 16 --seq 64    # train's default
    python benchmarks/profile_step.py --sizes 1e4,1e5 --torch            # and PyTorch's twin

For each size, one scanned chunk (`make bench`'s shape by default) is compiled and warmed
up, then timed without the profiler (tokens/s, minor page faults per step) and run once
more under ``jax.profiler.trace``. Every executed XLA op in the trace is matched with its
instruction in the compiled HLO (its shape and the JAX operation it came from) and put in
one of these bins:

  dense matmuls       the 6N FLOPs: projections, MLP, readout, forward and backward
  attention matmuls   q k^T and p v per head (batched dots), forward and backward
  softmax and mask    the max and exp over the scores, the causal select
  layout copies       transposes, copies, concatenations (head splits and merges)
  reductions          LayerNorm statistics, bias gradients, other sums
  elementwise         GELU, residual adds, multiplies, the optimizer update
  other               the loop, sampling, everything else

and reported as ms per step, share of op time, and (for the matmul bins) the FLOP/s they
reach against the measured peak. "host and idle" is wall time not covered by ops (the
host loop, thread hand-offs, page faults).

With ``--torch`` the same model in PyTorch (bench_train.py's twin: eager, AdamW, clipping,
the same threads) is timed and profiled with ``torch.profiler`` too, its ops' self time put
in the same bins (its fused attention kernel, forward and backward, counts as "attention
matmuls"; its AdamW's foreach ops as "elementwise"), so a CPU where PyTorch is ahead shows
which bins it wins. Writes benchmarks/results/profile_step-<host>-<cpu>.json.
Runtime: about 2 minutes.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import platform
import re
import resource
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BINS = ["dense matmuls", "attention matmuls", "softmax and mask", "layout copies", "reductions",
        "elementwise", "other"]
STEPS = {"1e4": 40, "1e5": 20, "1e6": 6, "1e7": 2}


def classify(name: str, op: str, opcode: str = "") -> str:
    """A bin from the HLO op's name, its opcode and the JAX operation it came from (its
    op_name). A dot is a matmul whatever its op_name ends with (a backward dot can carry
    the name of the transpose it absorbed)."""
    last = op.rsplit("/", 1)[-1]
    if "dot_general" in op or opcode == "dot":
        return "attention matmuls" if ("bthk" in op or "bhts" in op) else "dense matmuls"
    if "reduce_max" in op or "_where" in op or last == "exp":
        return "softmax and mask"
    if last in ("transpose", "squeeze", "concatenate", "reshape", "copy") or name.startswith(("copy", "transpose")):
        return "layout copies"
    if "reduce" in last or last == "rsqrt":
        return "reductions"
    if last in ("add", "add_any", "mul", "sub", "div", "tanh", "integer_pow", "square", "sqrt", "max",
                "min", "neg", "select_n", "convert_element_type", "pow", "log", "abs", "sign"):
        return "elementwise"
    return "other"


# PyTorch ops (aten names, self CPU time) in the bins above.
TORCH_BINS = {
    "dense matmuls": ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear"),
    "attention matmuls": ("aten::_scaled_dot_product_flash_attention_for_cpu",
                          "aten::_scaled_dot_product_flash_attention_for_cpu_backward"),
    "softmax and mask": ("aten::_softmax", "aten::_softmax_backward_data", "aten::masked_fill"),
    "layout copies": ("aten::copy_", "aten::cat", "aten::contiguous", "aten::clone", "aten::_to_copy"),
    "reductions": ("aten::sum", "aten::native_layer_norm", "aten::native_layer_norm_backward",
                   "aten::norm", "aten::linalg_vector_norm", "aten::_foreach_norm", "aten::mean"),
}


def torch_bin(name: str) -> str:
    for b, names in TORCH_BINS.items():
        if name in names:
            return b
    if name.startswith(("aten::_foreach_", "aten::add", "aten::mul", "aten::div", "aten::sub", "aten::gelu",
                        "aten::lerp", "aten::sqrt", "aten::addcmul", "aten::addcdiv", "aten::clamp",
                        "aten::fill_", "aten::zero_", "aten::where", "aten::neg", "aten::exp", "aten::log")):
        return "elementwise"
    return "other"


def profile_torch(cfg, steps: int) -> dict:
    """PyTorch's twin of ``cfg``: median step time, and its ops' self time per step in BINS."""
    from torch.profiler import ProfilerActivity, profile

    from bench_train import torch_twin

    step, data = torch_twin(cfg, steps - 1)  # steps batches

    def run():
        for tokens in data:
            step(tokens)

    run()
    walls = []
    for _ in range(3):
        t0 = time.perf_counter()
        run()
        walls.append((time.perf_counter() - t0) / steps)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    bins = collections.Counter()
    top = collections.Counter()
    for ev in prof.key_averages():
        ms = ev.self_cpu_time_total / 1e3 / steps
        bins[torch_bin(ev.key)] += ms
        top[ev.key] += ms
    step_s = sorted(walls)[1]
    return {"step_ms": 1e3 * step_s, "tokens_per_s": cfg.train.tokens_per_step / step_s,
            "op_ms": sum(bins.values()), "bins_ms": {b: bins.get(b, 0.0) for b in BINS},
            "top_ops": [{"op": k, "ms": v} for k, v in top.most_common(12)]}


def hlo_index(text: str) -> dict[str, tuple[str, str, str]]:
    """instruction name -> (shape, op_name metadata, opcode).

    A fusion whose computation holds a dot is that dot, with the fused epilogue after it:
    XLA:CPU (JAX 0.10, its YNNPACK fusions) fuses the attention backward's dP = dO V^T
    with the softmax backward's row sum, and that fusion carries the reduce's op_name.
    Binned by its op_name it counted a batched matmul as a reduction (the Zen 4 profile of
    b926d9b: 9.5 ms of "reductions" at 1e6 knobs). Such a fusion gets the dot's op_name
    and opcode, with ``+ fused`` and the fusion's own op_name appended."""
    dots = {}  # fused computation -> the op_name of its (first) dot
    for comp in re.split(r"\n(?=%|ENTRY)", text):
        head = re.match(r"%([\w\-\.]+) ", comp)
        dot = re.search(r"^\s*(?:ROOT )?%[\w\-\.]+ = \S+ dot\(.*?op_name=\"([^\"]*)\"", comp, re.M)
        if head and dot:
            dots[head.group(1)] = dot.group(1)
    out = {}
    for m in re.finditer(r"^\s*%([\w\-\.]+) = (\S+) ([\w\-]+)\(.*?op_name=\"([^\"]*)\"", text, re.M):
        name, shape, opcode, op = m.group(1), m.group(2), m.group(3), m.group(4)
        called = re.search(r"calls=%([\w\-\.]+)", m.group(0))
        if opcode == "fusion" and called and called.group(1) in dots:
            if "dot_general" not in op:
                op = f"{dots[called.group(1)]} + fused {op.rsplit('/', 1)[-1]}"
            opcode = "dot"
        out[name] = (shape, op, opcode)
    return out


def profile_size(size: str, batch: int, seq: int, steps: int, peak: float, with_torch: bool = False) -> dict:
    import jax

    from knobsim.data.language import build_language
    from knobsim.data.sampler import device_tables, words_needed
    from knobsim.core.plan import flops_per_token, plan_run
    from knobsim.core.programs import build_programs, init_state

    cfg = plan_run(params=int(float(size)), steps=1000, batch=batch, seq=seq)
    lang = build_language(cfg.language)
    tables = device_tables(lang)
    progs = build_programs(cfg, words_needed(lang, cfg.train.seq))
    state = init_state(cfg, progs)
    index = hlo_index(progs.chunk.lower(state, tables, None, steps).compile().as_text())
    state, m = progs.chunk(state, tables, None, steps)
    jax.block_until_ready(m)
    walls, faults = [], []
    for _ in range(3):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        state, m = progs.chunk(state, tables, None, steps)
        jax.block_until_ready(m)
        walls.append((time.perf_counter() - t0) / steps)
        faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / steps)
    step_s = sorted(walls)[1]
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d, create_perfetto_trace=True):
            state, m = progs.chunk(state, tables, None, steps)
            jax.block_until_ready(m)
        trace = next(Path(d).rglob("*.trace.json.gz"))
        events = [e for e in json.load(gzip.open(trace))["traceEvents"] if e.get("ph") == "X"]
    bins = collections.Counter()
    top = collections.Counter()
    for e in events:
        if e["name"] not in index:
            continue
        shape, op, opcode = index[e["name"]]
        b = classify(e["name"], op, opcode)
        bins[b] += e["dur"] * 1e-6 / steps
        top[(b, shape, op.split("closed_call/")[-1])] += e["dur"] * 1e-6 / steps
    op_s = sum(bins.values())
    tokens = cfg.train.tokens_per_step
    f6n, fattn = flops_per_token(cfg)
    s = cfg.model.shape.to_dict()
    row = {
        "size": size, "n_params": cfg.model.n_params_total, "shape": s, "batch": batch, "seq": seq,
        "step_ms": 1e3 * step_s, "tokens_per_s": tokens / step_s, "mfu": f6n * tokens / step_s / peak,
        "faults_per_step": sorted(faults)[1],
        "op_ms": 1e3 * op_s,
        "bins_ms": {b: 1e3 * bins.get(b, 0.0) for b in BINS},
        "dense_matmul_flops": f6n * tokens / bins["dense matmuls"] if bins["dense matmuls"] else None,
        "attention_matmul_flops": ((fattn - f6n) * tokens / bins["attention matmuls"]
                                   if bins["attention matmuls"] else None),
        "top_ops": [{"bin": k[0], "shape": k[1], "op": k[2], "ms": 1e3 * v} for k, v in top.most_common(12)],
    }
    # The bound this profile implies: every op but the dense matmuls made free.
    row["mfu_if_only_dense_matmuls"] = f6n * tokens / bins["dense matmuls"] / peak if bins["dense matmuls"] else None
    if with_torch:
        row["torch"] = profile_torch(cfg, steps)
    return row


def main():
    from knobsim.core import runtime

    runtime.reexec_with_hugepages()  # as `knobsim` runs (KNOBSIM_HUGEPAGES=0: without)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1e4,1e5,1e6,1e7")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--torch", action="store_true", help="profile PyTorch's twin too (the bench extra)")
    ap.add_argument("--out", default=None, help="the JSON to write (default benchmarks/results/...)")
    a = ap.parse_args()
    if a.torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            ap.exit(2, "error: --torch needs PyTorch: pip install -e '.[bench]' (make bench installs it)\n")
    from knobsim.core import hardware

    peak = hardware.measure_peak_flops(repeats=6)["peak_flops"]
    rows = []
    for size in a.sizes.split(","):
        r = profile_size(size, a.batch, a.seq, STEPS.get(size, 10), peak, with_torch=a.torch)
        rows.append(r)
        t = r.get("torch")
        print(f"\n{size} knobs ({r['n_params']:,}), batch {a.batch} x {a.seq}: {r['step_ms']:.1f} ms/step, "
              f"{r['tokens_per_s']:,.0f} tok/s, MFU {100 * r['mfu']:.1f}%, {r['faults_per_step']:,.0f} faults/step"
              + (f"; PyTorch eager {t['step_ms']:.1f} ms/step, {t['tokens_per_s']:,.0f} tok/s" if t else ""))
        if t:
            print(f"  {'':18s} {'knobsim':>21s}   {'PyTorch (self time)':>21s}")
        for b in BINS:
            ms = r["bins_ms"][b]
            if t:
                tms = t["bins_ms"][b]
                print(f"  {b:18s} {ms:8.2f} ms  {100 * ms / r['op_ms']:5.1f}%   {tms:8.2f} ms  {100 * tms / t['op_ms']:5.1f}%")
                continue
            extra = ""
            if b == "dense matmuls" and r["dense_matmul_flops"]:
                extra = f"  {r['dense_matmul_flops'] / 1e9:.0f} GFLOP/s ({100 * r['dense_matmul_flops'] / peak:.0f}% of peak)"
            if b == "attention matmuls" and r["attention_matmul_flops"]:
                extra = f"  {r['attention_matmul_flops'] / 1e9:.0f} GFLOP/s"
            print(f"  {b:18s} {ms:8.2f} ms  {100 * ms / r['op_ms']:5.1f}%{extra}")
        print(f"  {'host and idle':18s} {max(0.0, r['step_ms'] - r['op_ms']):8.2f} ms  (wall minus ops)")
        if r["mfu_if_only_dense_matmuls"]:
            print(f"  bound: MFU {100 * r['mfu_if_only_dense_matmuls']:.0f}% if everything but the dense matmuls were free")
    # The CPU kind in the name: machines of several kinds share the host name "vm".
    from bench_train import cpu_tag

    cpu = hardware.cpu_info()
    out = Path(a.out) if a.out else HERE / "results" / f"profile_step-{platform.node()}-{cpu_tag(cpu)}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"cpu": cpu, "peak_flops": peak, "date": time.strftime("%Y-%m-%d"),
                               "load_avg_at_end": os.getloadavg(), "rows": rows}, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
