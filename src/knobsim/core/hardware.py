"""This machine's measured peak: the denominator of every MFU knobsim reports.

The peak is the best FLOP/s of large square matmuls on the device JAX uses (on the CPU in
fp32 also numpy's BLAS; best of several), in the run's compute dtype, measured once per
machine, backend and dtype and cached in ``$KNOBSIM_CACHE`` (default
``~/.cache/knobsim``). ``KNOBSIM_PEAK_FLOPS`` overrides the measurement (tests use it).
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    return Path(os.environ.get("KNOBSIM_CACHE", Path.home() / ".cache" / "knobsim"))


def _proc_cpuinfo() -> tuple[str | None, set[str]]:
    """The first CPU's "model name" and "flags" in /proc/cpuinfo: (None, set()) for what
    it does not list (other systems, other architectures)."""
    model, flags = None, None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if model is None and line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif flags is None and line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                if model is not None and flags is not None:
                    break
    except OSError:
        pass
    return model, flags or set()


def machine_id() -> str:
    """A key that changes when the hardware or backend does."""
    import jax

    cpu = _proc_cpuinfo()[0] or platform.processor() or platform.machine()
    dev = jax.devices()[0]
    return f"{platform.node()}|{cpu}|{os.cpu_count()}cpu|{jax.default_backend()}|{dev.device_kind}"


# CPU features that decide which kernels a framework can use: AMX tiles (Sapphire Rapids
# and later: bf16/int8 matrix units that PyTorch's oneDNN uses), AVX-512 with bf16 dot
# products (Zen 4, Cooper Lake), plain AVX-512 and AVX2.
CPU_FLAGS = ("amx_tile", "amx_bf16", "amx_int8", "avx512_bf16", "avx512f", "avx2", "fma")


def cpu_info() -> dict:
    """{"model", "cores", "flags"}: the CPU model as /proc/cpuinfo (lscpu) names it, the
    cores this process may use, and which of CPU_FLAGS it has."""
    model, flags = _proc_cpuinfo()
    model = model or platform.processor() or platform.machine()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "cores": cores, "flags": [f for f in CPU_FLAGS if f in flags]}


def _time_best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_peak_flops(n: int | None = None, repeats: int = 5, dtype: str = "float32") -> dict:
    """Best matmul FLOP/s of an (n x n) @ (n x n) product on the device JAX uses (and, for
    float32 on the CPU, in numpy too: the better BLAS sets the CPU's peak).

    ``n`` defaults to 2048 on the CPU and 8192 on accelerators (small products do not fill
    a GPU). ``dtype`` is the compute dtype ("float32" or "bfloat16"): a bf16 run's MFU is
    measured against the device's bf16 peak."""
    import jax
    import jax.numpy as jnp

    backend = jax.default_backend()
    n = n or (2048 if backend == "cpu" else 8192)
    flops = 2.0 * n**3
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    result = {"matmul_n": n, "dtype": dtype, "backend": backend,
              "device": jax.devices()[0].device_kind}
    best = 0.0
    if backend == "cpu" and dtype == "float32":
        np_s = _time_best(lambda: a @ b, repeats)
        result["numpy_flops"] = flops / np_s
        best = flops / np_s
    ja, jb = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
    mm = jax.jit(jnp.matmul)
    mm(ja, jb).block_until_ready()
    jax_s = _time_best(lambda: mm(ja, jb).block_until_ready(), repeats)
    result["jax_flops"] = flops / jax_s
    result["peak_flops"] = max(best, flops / jax_s)
    return result


# A peak measured while other work kept the cores busy reads low, and every MFU after it high
# (a peak cached beside a background sweep once read 134 GFLOP/s where the idle machine
# gives 300). So the share of the machine busy just before measuring is sampled: above this,
# the measurement is cached marked "busy" and measured again once the machine is idle.
BUSY_LIMIT = 0.25


def busy_share(window: float = 0.2) -> float | None:
    """The share of all the machine's CPU time that was busy over the next ``window``
    seconds (/proc/stat: every core, every process); None where /proc/stat is missing."""
    def read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]  # user .. steal (guest is in user)
        return sum(ticks), ticks[3] + ticks[4]  # all, idle + iowait

    try:
        all0, idle0 = read()
        time.sleep(window)
        all1, idle1 = read()
    except (OSError, ValueError, IndexError):
        return None
    return None if all1 <= all0 else 1.0 - (idle1 - idle0) / (all1 - all0)


def peak_flops(dtype: str = "float32") -> float:
    """The cached peak for this machine, backend and compute dtype, measuring it once if
    needed (about a second). A measurement taken while other work kept the machine busy
    (busy_share > BUSY_LIMIT) is kept marked ``busy`` and replaced by the next one taken on
    an idle machine; the cache keeps the best of them."""
    env = os.environ.get("KNOBSIM_PEAK_FLOPS")
    if env:
        return float(env)
    path = cache_dir() / "peak.json"
    key = machine_id() + ("" if dtype == "float32" else f"|{dtype}")
    cached = _read_cache(path)
    old = cached.get(key) if cached.get(key, {}).get("peak_flops", 0) > 0 else None
    if old and "busy" not in old:
        return float(old["peak_flops"])
    busy = busy_share()
    loaded = busy is not None and busy > BUSY_LIMIT
    if old and loaded:  # measured busy, and still busy: measuring again would not be better
        return float(old["peak_flops"])
    new = measure_peak_flops(repeats=6, dtype=dtype)
    new["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    if loaded:
        new["busy"] = round(busy, 2)
    best = dict(max((r for r in (old, new) if r), key=lambda r: r["peak_flops"]))
    if not loaded:
        best.pop("busy", None)  # an idle measurement settles it
    cached[key] = best
    _write_cache(path, cached)
    return float(best["peak_flops"])


def _read_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, data: dict) -> None:
    """Write-then-rename; a read-only home still gets its numbers, just no cache."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
    except OSError:
        pass


def record_mfu(arch: str, n_params: int, mfu: float, tokens_per_s: float) -> None:
    """Remember the MFU of the largest transformer trained on this machine (the zoo's time
    estimates use it). Best effort: a read-only cache just means no record."""
    if arch != "transformer" or not (mfu > 0):
        return
    path = cache_dir() / "mfu.json"
    key = machine_id()
    data = _read_cache(path)
    old = data.get(key)
    if old and (old["n_params"] > n_params or (old["n_params"] == n_params and old["mfu"] >= mfu)):
        return
    data[key] = {"n_params": int(n_params), "mfu": float(mfu), "tokens_per_s": float(tokens_per_s),
                 "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _write_cache(path, data)


def record_run_mfu(summary: dict) -> bool:
    """record_mfu from a training run's summary, if it measures what the zoo assumes: one
    seed on one machine (one device, or CPU devices sharing its cores), float32, a finite
    speed. True if it was eligible (the cache keeps only the largest transformer's).
    Opt-in: `knobsim train --record-mfu`."""
    one_machine = summary.get("devices", 1) == 1 or summary.get("backend") == "cpu"
    ok = (summary.get("dtype") == "float32" and summary.get("n_seeds_together", 1) == 1
          and one_machine and math.isfinite(summary.get("tokens_per_s", math.nan)))
    if ok:
        record_mfu(summary["arch"], summary["n_params_total"], summary["mfu"], summary["tokens_per_s"])
    return ok


def measured_mfu() -> dict | None:
    """{"n_params", "mfu", ...} of the largest transformer trained here, or None."""
    return _read_cache(cache_dir() / "mfu.json").get(machine_id())
