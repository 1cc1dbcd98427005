"""Process set-up that makes knobsim fast on the CPU: huge pages and a compilation cache.

Two measured fixes, applied by the `knobsim` command and the experiment and benchmark
scripts at start (never on import: a library must not re-exec its host):

* **Huge pages for malloc.** XLA's CPU runtime takes fresh memory for the temporaries of
  each step; with 4 KiB pages every first touch is a page fault: 10,000 faults a step at
  1e6 knobs, 207,000 at 1e7 (batch 32 x 128). glibc (>= 2.35) can back malloc with
  transparent huge pages (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``), which cuts them to
  about 40 and 520 and buys 6% and 16% in tokens/s (benchmarks/bench_runtime.py).
  The tunable is read when the process starts, so the process re-executes itself once
  with it set (same PID, same arguments). ``KNOBSIM_HUGEPAGES=0`` turns this off.
* **A persistent XLA compilation cache** in ``$KNOBSIM_CACHE/xla`` (default
  ``~/.cache/knobsim/xla``): a shape compiled once is loaded, not compiled, by the next
  process (a second ``knobsim train --params 1e5`` skips seconds of compilation). The
  cached program is the same program, so results are the same bits.
  ``KNOBSIM_XLA_CACHE=0`` turns it off; ``JAX_COMPILATION_CACHE_DIR`` set by the user wins.

And the number of threads XLA:CPU computes with, which a process fixes before JAX starts
(:func:`xla_threads`, :func:`set_xla_threads`): it changes a run's bits, so a sweep that
trains points side by side sets it per point (knobsim.scaling.workers).
"""

from __future__ import annotations

import os
import sys

HUGEPAGES_ENV = "KNOBSIM_HUGEPAGES"
XLA_CACHE_ENV = "KNOBSIM_XLA_CACHE"
_TUNABLE = "glibc.malloc.hugetlb=1"
_REEXECED = "_KNOBSIM_REEXECED"  # set in the child: never loop


def _glibc_version() -> tuple[int, int] | None:
    try:
        name, ver = os.confstr("CS_GNU_LIBC_VERSION").split()  # "glibc 2.36"
        major, minor = ver.split(".")[:2]
        return (int(major), int(minor)) if name == "glibc" else None
    except (ValueError, OSError, AttributeError):
        return None


def _thp_available() -> bool:
    """Transparent huge pages enabled as "always" or "madvise" (not "[never]")."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[never]" not in f.read()
    except OSError:
        return False


def hugepages_wanted() -> bool:
    """Whether this process should run with malloc on huge pages and does not yet."""
    if os.environ.get(HUGEPAGES_ENV, "1") == "0" or os.environ.get(_REEXECED):
        return False
    if "glibc.malloc.hugetlb" in os.environ.get("GLIBC_TUNABLES", ""):
        return False  # already set (by us or by the user)
    v = _glibc_version()
    return sys.platform.startswith("linux") and v is not None and v >= (2, 35) and _thp_available()


def hugepages_active() -> bool:
    return "glibc.malloc.hugetlb=1" in os.environ.get("GLIBC_TUNABLES", "")


def reexec_with_hugepages() -> None:
    """Re-execute this process with glibc's huge-page tunable, if useful; else return.

    Call it first thing in a program's entry point, before anything has been printed or
    any thread started. The new image has the same PID, arguments and environment plus
    GLIBC_TUNABLES; if the exec fails, the process simply carries on without it."""
    if not hugepages_wanted():
        return
    argv = list(getattr(sys, "orig_argv", []) or [])
    if not argv:
        return
    env = dict(os.environ)
    old = env.get("GLIBC_TUNABLES", "")
    env["GLIBC_TUNABLES"] = f"{old}:{_TUNABLE}" if old else _TUNABLE
    env[_REEXECED] = "1"
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, argv, env)
    except OSError:
        return


def enable_compilation_cache() -> str | None:
    """Point JAX's persistent compilation cache at knobsim's cache folder; returns it."""
    if os.environ.get(XLA_CACHE_ENV, "1") == "0":
        return None
    import jax

    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    from knobsim.core.hardware import cache_dir

    path = cache_dir() / "xla"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home: compile every time, as before
    jax.config.update("jax_compilation_cache_dir", str(path))
    return str(path)


def setup() -> None:
    """Everything an entry point does at start: huge pages (may re-exec), then the cache."""
    reexec_with_hugepages()
    enable_compilation_cache()


# -- XLA:CPU's threads ---------------------------------------------------------------------

# XLA:CPU sizes its intra-op thread pool once, when its backend starts, by the rule of
# DefaultThreadPoolSize (xla/pjrt/utils.cc, JAX 0.10): the environment variable PJRT_NPROC,
# else NPROC, else the number of cores the process may run on (its affinity mask). Checked
# on JAX 0.10.2 by counting the pool's "XLAEigen" threads: PJRT_NPROC=1 gives one, 3 gives
# three on a 2-core machine. "intra_op_parallelism_threads=1" in XLA_FLAGS is ignored (two
# threads still), and --xla_cpu_multi_thread_eigen=false is honoured but changes the bits
# even on one thread, so it is not used. The pool's size changes a run's bits (a matmul's
# sums split over threads add in another order); the cores it is pinned to do not: a 3e4-knob
# run gave the same weights with PJRT_NPROC=1 unpinned, pinned to core 0 or to core 1, and
# under `taskset -c 0` without it; PJRT_NPROC=2 pinned to one core gave the two-thread bits.
THREADS_ENV = "PJRT_NPROC"


def cores() -> int:
    """The cores this process may run on (its affinity mask; all of them by default)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def core_ids() -> list[int]:
    """Which cores this process may run on, in order."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def xla_threads(environ=None) -> int:
    """How many threads XLA:CPU's pool has, or will have, in a process with this environment
    (default: this one's), by XLA's own rule (THREADS_ENV above); at least 1."""
    env = os.environ if environ is None else environ
    for name in (THREADS_ENV, "NPROC"):
        try:
            return max(1, int(env[name]))
        except (KeyError, ValueError):
            continue
    return cores()


def thread_env(threads: int) -> dict[str, str]:
    """The environment a new process needs for XLA:CPU to compute on ``threads`` threads."""
    return {THREADS_ENV: str(int(threads))}


def pool_threads() -> int | None:
    """The threads of this process's XLA:CPU pool, counted once its backend has started
    (Linux: /proc names them "XLAEigen"); None where they cannot be counted."""
    try:
        names = [open(f"/proc/self/task/{t}/comm").read() for t in os.listdir("/proc/self/task")]
    except OSError:
        return None
    return sum("XLAEigen" in n for n in names) or None


def _backend_started() -> bool:
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # a JAX without it: assume the worst
        return True


def set_xla_threads(threads: int) -> None:
    """Make XLA:CPU compute on ``threads`` threads in this process. Call it before JAX's
    backend starts (before the first array or jit); after that the pool is fixed, and asking
    for another size is an error rather than a silent no-op."""
    threads = int(threads)
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    if _backend_started() and xla_threads() != threads:
        raise RuntimeError(f"XLA's CPU backend has started with {xla_threads()} thread(s); "
                           f"set {THREADS_ENV}={threads} before the first JAX computation")
    os.environ.update(thread_env(threads))


def pin(core_list) -> None:
    """Run this process on these cores only (Linux; elsewhere a no-op). It moves where the
    threads run, not how many there are: the bits do not change."""
    if hasattr(os, "sched_setaffinity") and core_list:
        os.sched_setaffinity(0, set(core_list))
