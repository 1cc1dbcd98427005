"""Training throughput and MFU of knobsim against PyTorch on the same model: `make bench`.

    python benchmarks/bench_train.py                   # sizes 1e4,1e5,1e6,1e7; 5 repeats
    python benchmarks/bench_train.py --sizes 1e5 --repeats 3 --no-torch
    python benchmarks/bench_train.py --dtype bf16      # knobsim --dtype bf16 vs torch.autocast(bf16)
    python benchmarks/bench_train.py --shape 16x64 --out /tmp/b.json   # one shape, JSON where asked
    python benchmarks/bench_train.py --isa avx2        # AVX2 code only, on a CPU with AVX-512

For each size and each --shape (batch x sequence; default both 32x128, the shape of the first
profile, and 16x64, the experiments' and `make run`'s), the knobsim transformer that `knobsim train --params N` builds is timed on
whole scanned chunks (sampling on the device included), after one warm-up chunk that
compiles, on the devices `knobsim train` would give it (--devices auto: one CPU device per
core up to 320k knobs, docs/devices.md; --devices 1: one device). The same architecture (pre-LN GPT, tied embeddings with the 1/D readout,
sinusoidal positions, GELU-tanh), batch, sequence length and optimizer (AdamW +
global-norm clipping) is timed in PyTorch, eager and torch.compile, with the same number
of threads, on pre-generated random tokens (so PyTorch is not charged for sampling).

All three are compiled and warmed up first; then the timed repeats take turns (knobsim,
eager, compiled, knobsim, ...), so a drift in machine load hits all of them alike, each
turn one untimed call and one timed one (right after the other framework ran, a first call
is up to 25% slower), and the medians of --repeats are compared. The process re-executes itself with malloc on huge
pages, as `knobsim` does (KNOBSIM_HUGEPAGES=0 to measure without).

MFU = 6 N tokens/s / peak, the peak being the best matmul rate in the compute dtype
measured in the same run (fp32: numpy and JAX; bf16: JAX and, with PyTorch installed,
torch's bf16 matmul, which reaches AMX through oneDNN where the CPU has it); "MFU+attn"
adds 12 L T D FLOPs per token. The first line printed names the CPU model, its cores and
the matrix/vector features that decide the kernels (AMX, AVX-512 bf16, AVX-512, AVX2).
With --dtype bf16 knobsim trains as `knobsim train --dtype bf16` does (float32 master
weights cast to bf16 in the loss) and PyTorch runs its forward pass under
torch.autocast("cpu", torch.bfloat16) (its mixed precision: weights and optimizer float32).
Writes --out, default benchmarks/results/bench_train-<host>-<cpu>.json (cpu: amd, intel,
intel-amx, ...), and prints a table. Runtime: about 5 to
10 minutes with PyTorch at the default sizes on a 2-core laptop.
PyTorch is optional: `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import jax

from knobsim.core import hardware, parallel
from knobsim.config import parse_count
from knobsim.data.language import VOCAB, build_language
from knobsim.data.sampler import device_tables, words_needed
from knobsim.core.plan import flops_per_token, plan_run
from knobsim.core.state import canonical_dtype
from knobsim.core.programs import build_programs, init_state


def torch_peak_flops(n: int = 2048, repeats: int = 6, dtype: str = "float32") -> float:
    """Best torch matmul FLOP/s in ``dtype`` (bf16 on a CPU with AMX goes through oneDNN)."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    dt = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def knobsim_timer(cfg, chunk_steps: int):
    """Compile and warm up knobsim's chunk; return a function that times one chunk."""
    lang = build_language(cfg.language)
    tables = device_tables(lang)
    progs = build_programs(cfg, words_needed(lang, cfg.train.seq))
    box = {"state": init_state(cfg, progs)}
    box["state"], m = progs.chunk(box["state"], tables, None, chunk_steps)  # compile + warm up
    jax.block_until_ready(m)

    def timed() -> float:
        t0 = time.perf_counter()
        box["state"], m = progs.chunk(box["state"], tables, None, chunk_steps)
        jax.block_until_ready(m)
        return chunk_steps * cfg.train.tokens_per_step / (time.perf_counter() - t0)

    return timed


def torch_model(shape, seq):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    d, f, h, n_layer = shape.d_model, shape.d_ff, shape.n_head, shape.n_layer

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.o = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.fc_in, self.fc_out = nn.Linear(d, f), nn.Linear(f, d)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.o(a.transpose(1, 2).reshape(b, t, d))
            return x + self.fc_out(F.gelu(self.fc_in(self.ln2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(VOCAB, d)
            self.blocks = nn.ModuleList(Block() for _ in range(n_layer))
            self.ln_f = nn.LayerNorm(d)
            pos = torch.arange(seq)[:, None]
            i = torch.arange(d)[None, :]
            ang = pos / torch.pow(10_000.0, (2 * (i // 2)) / d)
            self.register_buffer("pos", torch.where(i % 2 == 0, torch.sin(ang), torch.cos(ang)))

        def forward(self, idx, targets):
            x = self.tok(idx) + self.pos[: idx.shape[1]]
            for blk in self.blocks:
                x = blk(x)
            logits = self.ln_f(x) @ self.tok.weight.T / d
            return F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))

    return GPT()


def torch_twin(cfg, steps: int, dtype: str = "float32"):
    """The PyTorch twin of ``cfg`` (same knobs, asserted), its AdamW + clipping step, and
    ``steps + 1`` random batches: (step, data), step(tokens) -> loss."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    model = torch_model(cfg.model.shape, cfg.train.seq)
    n = sum(p.numel() for p in model.parameters())
    assert n == cfg.model.n_params_total, (n, cfg.model.n_params_total)  # same knobs
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=(0.9, 0.95), weight_decay=0.1)
    b, t = cfg.train.batch, cfg.train.seq
    data = torch.randint(0, VOCAB, (steps + 1, b, t + 1))

    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")

    def step(tokens):
        with autocast:  # bf16: the forward in bf16 where autocast allows, weights float32
            loss = model(tokens[:, :-1], tokens[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    return step, data


def torch_timer(cfg, steps: int, compile_: bool, dtype: str = "float32"):
    """Build (and compile) the PyTorch twin and warm it up; return a function that times
    ``steps`` steps, or None when torch.compile is unavailable."""
    import torch

    step, data = torch_twin(cfg, steps, dtype)
    b, t = cfg.train.batch, cfg.train.seq

    if compile_:
        try:
            step = torch.compile(step)
            step(data[0])
        except Exception as e:  # pragma: no cover - depends on the toolchain
            print(f"  torch.compile unavailable: {' '.join(str(e).split())[:200]}")
            return None
    step(data[0])  # warm up / compile
    step(data[0])

    def timed() -> float:
        t0 = time.perf_counter()
        for s in range(steps):
            step(data[s])
        return steps * b * t / (time.perf_counter() - t0)

    return timed


def parse_shapes(text: str) -> list[tuple[int, int]]:
    """"32x128,16x64" -> [(32, 128), (16, 64)]; ValueError naming the bad part."""
    shapes = []
    for part in text.split(","):
        b, _, t = part.strip().lower().partition("x")
        if not (b.isdigit() and t.isdigit() and int(b) > 0 and int(t) > 0):
            raise ValueError(f"--shape {part.strip()!r} is not BATCHxSEQ with positive integers, e.g. 16x64")
        shapes.append((int(b), int(t)))
    return shapes


def cpu_tag(cpu: dict) -> str:
    """A short name for the CPU kind, so results from different CPUs do not overwrite each
    other under one host name: amd, intel, intel-amx, arm, ..."""
    model = cpu["model"].lower()
    vendor = next((v for v in ("amd", "intel", "arm", "apple") if v in model), "cpu")
    return vendor + ("-amx" if "amx_bf16" in cpu["flags"] else "")


# --isa avx2: both frameworks restricted to AVX2 code on a CPU that has more, so a machine
# with AVX-512 can check the code paths an AVX2-only CPU runs (not its clock or caches).
# Read when each library starts, so set before the re-exec below and before any import.
ISA_ENV = {"avx2": {"XLA_FLAGS": "--xla_cpu_max_isa=AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                    "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}


def restrict_isa(isa: str | None) -> dict:
    """Set the environment that limits XLA, PyTorch (ATen), MKL and oneDNN to `isa`;
    returns those variables as this process has them."""
    for k, v in ISA_ENV.get(isa, {}).items():
        old = os.environ.get(k, "")
        if k == "XLA_FLAGS":
            v = old if v in old else f"{old} {v}".strip()
        os.environ[k] = v
    return {k: os.environ.get(k) for k in ISA_ENV["avx2"]}


def main():
    from knobsim.core import runtime

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1e4,1e5,1e6,1e7")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--dtype", default="float32", help="compute dtype: float32 or bf16")
    ap.add_argument("--shape", default="32x128,16x64",
                    help="tokens per step as BATCHxSEQ, comma-separated (default 32x128,16x64)")
    ap.add_argument("--out", default=None, help="the JSON to write (default benchmarks/results/...)")
    ap.add_argument("--devices", choices=("auto", "1"), default="auto",
                    help="knobsim's devices: auto, as `knobsim train` runs it (one CPU device per "
                         "core for transformers up to 320k knobs), or 1 (one device, all sizes)")
    ap.add_argument("--isa", choices=sorted(ISA_ENV), default=None,
                    help="restrict XLA and PyTorch to this instruction set (default: all the CPU has)")
    a = ap.parse_args()
    kernel_env = restrict_isa(a.isa)
    runtime.reexec_with_hugepages()  # as `knobsim` runs (KNOBSIM_HUGEPAGES=0: without)
    dtype = canonical_dtype(a.dtype)
    try:
        shapes = parse_shapes(a.shape)
    except ValueError as e:
        ap.exit(2, f"error: {e}\n")

    try:
        import torch  # noqa: F401
        have_torch = not a.no_torch
    except ImportError:
        have_torch = False
        print("PyTorch not installed (pip install -e '.[bench]'): knobsim only")

    cpu = hardware.cpu_info()
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores; features: {' '.join(cpu['flags']) or 'none of note'}"
          + (f"; restricted to {a.isa.upper()} code (--isa)" if a.isa else ""))
    if a.devices == "auto":  # before JAX starts (the peak below starts it), as `knobsim train`
        parallel.force_cpu_devices(cpu["cores"])
    peak = hardware.measure_peak_flops(n=2048, repeats=6, dtype=dtype)
    if have_torch and dtype == "bfloat16":
        peak["torch_flops"] = torch_peak_flops(dtype=dtype)
        peak["peak_flops"] = max(peak["peak_flops"], peak["torch_flops"])
    parts = ", ".join(f"{k.split('_')[0]} {v / 1e9:.0f}" for k, v in peak.items()
                      if k.endswith("_flops") and k != "peak_flops")
    print(f"peak {dtype} matmul: {peak['peak_flops'] / 1e9:.0f} GFLOP/s ({parts}); "
          f"backend {jax.default_backend()}")
    rows = []
    for size, (batch, seq) in itertools.product(a.sizes.split(","), shapes):
        split = parallel.cpu_split("transformer", parse_count(size), batch, cpu["cores"]) if a.devices == "auto" else 1
        devices = (split > 1 and parallel.forced_cpu_count(split)) or 1
        cfg = plan_run(params=parse_count(size), steps=1000, batch=batch, seq=seq, check_memory=True,
                       dtype=dtype, devices=devices)
        n = cfg.model.n_params_total
        # Aim for ~2 s per timed repeat: fewer steps for bigger models.
        per_step_flops = 6 * n * cfg.train.tokens_per_step
        steps = int(min(200, max(2, 2 * peak["peak_flops"] * 0.3 / per_step_flops)))
        row = {"budget": size, "n_params": n, "batch": batch, "seq": seq, "shape": cfg.model.shape.to_dict(),
               "steps_per_repeat": steps, "knobsim_devices": devices}
        # Everything compiled and warmed up first; then the timed repeats take turns
        # (knobsim, eager, compiled, knobsim, ...) so drifts in machine load hit all alike.
        # Each turn starts with one untimed call: measured here, the first call after the
        # other framework ran is up to 25% slower (its memory and caches are cold), for
        # knobsim and PyTorch alike; a sleep does not help, a call does.
        timers = {"knobsim": knobsim_timer(cfg, steps)}
        if have_torch:
            timers["torch_eager"] = torch_timer(cfg, steps, compile_=False, dtype=dtype)
            if not a.no_compile:
                timers["torch_compile"] = torch_timer(cfg, steps, compile_=True, dtype=dtype)
        timers = {k: v for k, v in timers.items() if v is not None}
        runs = {k: [] for k in timers}
        for _ in range(a.repeats):
            for k, timed in timers.items():
                timed()  # re-warm after the other framework's turn
                runs[k].append(timed())
        row["knobsim_tokens_per_s"] = statistics.median(runs["knobsim"])
        for k, v in runs.items():
            row[f"{k}_all"] = v
            if k != "knobsim":
                row[f"{k}_tokens_per_s"] = statistics.median(v)
        if have_torch and not a.no_compile and "torch_compile" not in timers:
            row["torch_compile_tokens_per_s"] = None
        f6n, fattn = flops_per_token(cfg)
        row["mfu"] = f6n * row["knobsim_tokens_per_s"] / peak["peak_flops"]
        row["mfu_with_attention"] = fattn * row["knobsim_tokens_per_s"] / peak["peak_flops"]
        best_torch = max([v for k, v in row.items() if k.startswith("torch_") and k.endswith("_per_s") and v]
                         or [math.nan])
        row["ratio_vs_best_torch"] = row["knobsim_tokens_per_s"] / best_torch
        if "torch_eager_tokens_per_s" in row:
            row["ratio_vs_torch_eager"] = row["knobsim_tokens_per_s"] / row["torch_eager_tokens_per_s"]
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "shape" and not k.endswith("_all")}), flush=True)

    print()
    print(f"{'knobs':>11} {'BxT':>7} {'dev':>3} {'knobsim tok/s':>14} {'MFU':>6} {'MFU+attn':>9} {'torch eager':>12} "
          f"{'torch.compile':>14} {'x best torch':>13}")
    for r in rows:
        def f(k):
            v = r.get(k)
            return f"{v:,.0f}" if v else "-"
        print(f"{r['n_params']:>11,} {str(r['batch']) + 'x' + str(r['seq']):>7} {r['knobsim_devices']:>3} {f('knobsim_tokens_per_s'):>14} {100 * r['mfu']:>5.1f}% "
              f"{100 * r['mfu_with_attention']:>8.1f}% {f('torch_eager_tokens_per_s'):>12} "
              f"{f('torch_compile_tokens_per_s'):>14} {r['ratio_vs_best_torch']:>13.2f}")
    suffix = ("" if dtype == "float32" else "-bf16") + (f"-isa-{a.isa}" if a.isa else "")
    name = f"bench_train-{platform.node()}-{cpu_tag(cpu)}{suffix}.json"
    out = Path(a.out or Path(__file__).parent / "results" / name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": hardware.machine_id(), "cpu": cpu, "dtype": dtype, "devices": a.devices,
                               "isa": a.isa or "native", "kernel_env": kernel_env, "peak": peak, "repeats": a.repeats, "shapes": [f"{b}x{t}" for b, t in shapes],
                               "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
