"""Many devices: data parallelism through jax.sharding, and multi-host start.

When JAX sees several devices (GPUs, TPU cores, or CPU devices forced with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``), a run trains data-parallel on a
one-axis mesh, the way jax.sharding's "distributed arrays and automatic parallelization"
tutorial does it:

    mesh       Mesh(devices, ("data",))       every device of every process, in one axis
    state      NamedSharding(mesh, P())       params, Adam moments, step, key: replicated
    batch      NamedSharding(mesh, P("data")) each device holds batch / n_devices sequences

The batch is still sampled inside the jitted step from fold_in(key, step); a
``with_sharding_constraint`` asks XLA to lay it out over the mesh, and XLA's SPMD
partitioner derives the rest: each device runs the forward and backward pass on its rows
and the gradients are summed by an all-reduce. Nothing else changes: the random bits
(threefry is partitionable) and so the data stream are the same as on one device, and the
losses agree with a one-device run to float rounding.

How many devices a run uses is its config's ``RunConfig.devices`` (``--devices N``, or
``KNOBSIM_DEVICES=N`` read by the CLI; None: every device JAX sees). With one device there
is no mesh at all (``data_mesh`` returns None) and every program is exactly the
single-device one.

Multi-host: ``initialize_distributed`` calls ``jax.distributed.initialize`` before JAX
touches a device (``knobsim train --distributed`` or ``KNOBSIM_DISTRIBUTED=1``); the mesh
then spans every process's devices (docs/devices.md). The run directory such a run shares,
written by process 0, is io/multihost.py's.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from knobsim.errors import KnobsimError

AXIS = "data"  # the mesh's one axis: the batch is split along it
DEVICES_ENV = "KNOBSIM_DEVICES"  # the CLI's --devices from the environment (cli/options.py)
DISTRIBUTED_ENV = "KNOBSIM_DISTRIBUTED"  # 1: call jax.distributed.initialize first
# JAX reads the coordinator address itself (JAX_COORDINATOR_ADDRESS) but takes the number
# of processes and this process's id only from a cluster it detects (Slurm, Open MPI,
# Kubernetes, Cloud TPU, mpi4py); elsewhere these two say them.
NUM_PROCESSES_ENV = "KNOBSIM_NUM_PROCESSES"
PROCESS_ID_ENV = "KNOBSIM_PROCESS_ID"


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise KnobsimError(f"{name}={raw!r} is not a non-negative integer; set it to a number or unset it")
    return value


# -- One CPU device per core, for small models ------------------------------------------

# XLA:CPU's thread pool splits a small model's many small ops poorly over the cores (at 1e4
# knobs one thread can beat two); the same batch split over one CPU device per core keeps
# every core busy. Measured on a 2-core Intel Xeon with AMX (docs/performance.md, the
# Xeon section; `python benchmarks/bench_threads.py --configs knobsim-Ct,knobsim-Cd`, the
# JSONs in benchmarks/results/bench_threads-vm-intel-amx*), two CPU devices against one:
#   batch x seq   1e4 knobs   1e5 knobs   3e5 knobs   1e6 knobs
#   16 x 64         +8%         +44%        +28%        +5%
#   32 x 128       +78%         +21%         +8%       -33%
# so `knobsim train` splits a transformer's batch this way up to CPU_SPLIT_MAX_PARAMS knobs.
CPU_SPLIT_MAX_PARAMS = 320_000
CPU_SPLIT_ARCHS = ("transformer",)  # the family measured; the others keep one device
FORCE_FLAG = "--xla_force_host_platform_device_count"


def cpu_split(arch: str, budget: int, batch: int, cores: int) -> int:
    """How many CPU devices `knobsim train` splits a run over by default: one per core (the
    largest count up to ``cores`` that divides ``batch``) for a transformer of at most
    CPU_SPLIT_MAX_PARAMS knobs; 1 otherwise."""
    if arch not in CPU_SPLIT_ARCHS or budget > CPU_SPLIT_MAX_PARAMS or cores < 2:
        return 1
    return max(d for d in range(1, min(cores, batch) + 1) if batch % d == 0)


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # another JAX: assume it has (the flag then waits)
        return True


def force_cpu_devices(n: int) -> bool:
    """Ask XLA:CPU for ``n`` devices (``XLA_FLAGS=--xla_force_host_platform_device_count=n``)
    if its backend has not started yet and nobody set the flag already. True if set.
    Harmless on a GPU or TPU machine: the CPU devices are then not the default backend's."""
    flags = os.environ.get("XLA_FLAGS", "")
    if n < 2 or FORCE_FLAG in flags or _backend_started():
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FORCE_FLAG}={n}".strip()
    return True


def forced_cpu_count(n: int) -> int | None:
    """After force_cpu_devices(n) returned True: ``n`` where the run's backend is the CPU
    and has them (a run's RunConfig.devices), else None (every device JAX sees)."""
    if jax.default_backend() != "cpu" or len(jax.devices()) < n:
        return None
    return n


def data_mesh(devices=None, n: int | None = None) -> Mesh | None:
    """A one-axis ("data") mesh over ``devices`` (default: jax.devices(), all processes),
    limited to ``n`` of them (a run's ``RunConfig.devices``; None: all); None for one device."""
    devs = list(jax.devices() if devices is None else devices)
    n = len(devs) if n is None else n
    if n < 1 or n > len(devs):
        raise KnobsimError(f"asked for {n} devices but JAX sees {len(devs)}; "
                           f"use --devices (or {DEVICES_ENV}) between 1 and {len(devs)}")
    if n == 1:
        return None
    if jax.process_count() > 1 and n != len(devs):
        raise KnobsimError(f"a multi-host run uses every device of every process ({len(devs)}); "
                           f"drop --devices / {DEVICES_ENV}")
    # make_mesh orders devices for the interconnect; Auto axes: shardings propagate (GSPMD).
    return jax.make_mesh((n,), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=devs[:n])


def n_devices(mesh: Mesh | None) -> int:
    return 1 if mesh is None else mesh.size


def replicated(mesh: Mesh) -> NamedSharding:
    """The train state's sharding: a full copy on every device."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
    """Sequences split over the mesh's devices along ``batch_axis``."""
    return NamedSharding(mesh, P(*([None] * batch_axis), AXIS))


def check_batch(batch: int, mesh: Mesh | None) -> None:
    """The per-step batch must split evenly over the devices."""
    n = n_devices(mesh)
    if batch % n:
        raise KnobsimError(f"--batch {batch} does not divide over {n} devices; "
                           f"use a multiple of {n} or {DEVICES_ENV}=1 (--devices 1)")


def constrain_batch(tokens: jax.Array, mesh: Mesh | None) -> jax.Array:
    """Inside jit: lay the step's (B, T+1) tokens out over the mesh (a no-op without one)."""
    if mesh is None:
        return tokens
    return jax.lax.with_sharding_constraint(tokens, batch_sharding(mesh))


def _put(x, sharding: NamedSharding):
    if not isinstance(x, jax.Array):  # a Python scalar in optax's state: jit handles it
        return x
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    # Multi-host: every process holds the same host value (same seed, same code); build the
    # global array from it (device_put checks that the processes agree).
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(_put(jax.random.key_data(x), sharding),
                                        impl=jax.random.key_impl(x))
    return jax.device_put(np.asarray(x), sharding)


def place_replicated(tree, mesh: Mesh | None):
    """Copy a pytree of arrays (a TrainState, the data tables, a pool) onto every device of
    ``mesh``, so that jit sees the shardings and keeps them; unchanged without a mesh."""
    if mesh is None:
        return tree
    s = replicated(mesh)
    return jax.tree.map(lambda x: _put(x, s), tree)


def place_eval_tokens(tokens, mesh: Mesh | None):
    """The fixed eval set (E, 32, T+1): its 32 sequences per pass split over the devices
    when they divide, else replicated (each device then scores the same rows)."""
    if mesh is None:
        return tokens
    if tokens.shape[1] % mesh.size == 0:
        return _put(tokens, batch_sharding(mesh, batch_axis=1))
    return _put(tokens, replicated(mesh))


def describe(mesh: Mesh | None) -> str:
    """One line for the plan printout."""
    n = len(jax.devices())
    if mesh is None:
        return "data parallel: off, one device" + (
            f" of {n} (--devices 1 / {DEVICES_ENV}=1)" if n > 1 else "")
    hosts = jax.process_count()
    cpu = " CPU" if jax.default_backend() == "cpu" else ""
    over = (f"{mesh.size}{cpu} devices" if mesh.size == n else f"{mesh.size} of {n}{cpu} devices") + (
        f" on {hosts} processes" if hosts > 1 else " on this machine's cores" if cpu else "")
    return f"data parallel: on, batch split over {over} (mesh axis {AXIS!r}; --devices 1: off)"


def distributed_requested(flag: bool = False) -> bool:
    return flag or os.environ.get(DISTRIBUTED_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def initialize_distributed() -> None:
    """``jax.distributed.initialize`` for a multi-host run; must come before anything asks
    JAX for its devices. The coordinator address comes from JAX_COORDINATOR_ADDRESS (or the
    detected cluster), the process count and id from KNOBSIM_NUM_PROCESSES and
    KNOBSIM_PROCESS_ID (or the detected cluster: Slurm, Open MPI, Kubernetes, Cloud TPU)."""
    kw = {}
    n, i = _env_int(NUM_PROCESSES_ENV), _env_int(PROCESS_ID_ENV)
    if n is not None:
        kw["num_processes"] = n
    if i is not None:
        kw["process_id"] = i
    try:
        jax.distributed.initialize(**kw)
    except (ValueError, RuntimeError) as e:
        raise KnobsimError(
            f"--distributed: jax.distributed.initialize failed ({' '.join(str(e).split())}); set "
            f"JAX_COORDINATOR_ADDRESS=host:port, {NUM_PROCESSES_ENV} and {PROCESS_ID_ENV} on every "
            "host, or start under Slurm / Open MPI") from None
