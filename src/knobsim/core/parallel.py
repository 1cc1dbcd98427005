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

With one device (or ``KNOBSIM_DEVICES=1``) there is no mesh at all (``data_mesh`` returns
None) and every program is exactly the single-device one.

Multi-host: ``initialize_distributed`` calls ``jax.distributed.initialize`` before JAX
touches a device (``knobsim train --distributed`` or ``KNOBSIM_DISTRIBUTED=1``); the mesh
then spans every process's devices (docs/devices.md).
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from knobsim.errors import KnobsimError

AXIS = "data"  # the mesh's one axis: the batch is split along it
DEVICES_ENV = "KNOBSIM_DEVICES"  # use this many devices (1: no data parallelism)
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
    if value < 0 or (name == DEVICES_ENV and value < 1):
        raise KnobsimError(f"{name}={raw!r} is not a {'positive' if name == DEVICES_ENV else 'non-negative'} "
                           "integer; set it to a number or unset it")
    return value


def requested_devices() -> int | None:
    """The device count asked for through KNOBSIM_DEVICES (``--devices``), or None: all."""
    return _env_int(DEVICES_ENV)


def data_mesh(devices=None, n: int | None = None) -> Mesh | None:
    """A one-axis ("data") mesh over ``devices`` (default: jax.devices(), all processes),
    limited to ``n`` of them (default: KNOBSIM_DEVICES, else all); None for one device."""
    devs = list(jax.devices() if devices is None else devices)
    n = requested_devices() if n is None else n
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
    over = (f"{mesh.size} devices" if mesh.size == n else f"{mesh.size} of {n} devices") + (
        f" on {hosts} processes" if hosts > 1 else "")
    return f"data parallel: on, batch split over {over} (mesh axis {AXIS!r})"


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


# -- multi-host: one run directory, written by process 0 -----------------------------------
#
# Every process runs the same program on its own devices and computes the same (replicated)
# numbers, so one writer is enough: process 0 writes config, metrics, summary, weights and
# knob records. Orbax checkpoints are written by all processes together (each its own
# shards, process 0 the metadata), so every process opens the same directory: a multi-host
# run needs --out on a filesystem that every host sees.


def multi_process() -> bool:
    return jax.process_count() > 1


def sync(name: str) -> None:
    """A barrier across processes (nothing with one process)."""
    if multi_process():
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _run_classes():
    from knobsim.io import rundir as record

    class LeaderRun(record.RunDir):
        """Process 0: writes the run directory as a single-host run does."""

        def truncate_after(self, step: int) -> list[dict]:
            rows = super().truncate_after(step)
            # Drop the knob records past the checkpoint here, before the others look, so
            # their recorders find nothing to delete (no two processes unlink one file).
            from knobsim.watch.recorder import truncate_records

            truncate_records(self.path, step)
            sync("knobsim:truncated")
            return rows

    class FollowerRun(record.RunDir):
        """Processes 1..n-1: the same directory (for the shared checkpoints); writes nothing."""

        def write_config(self, config) -> None:
            pass

        def append_metrics(self, rows) -> None:
            pass

        def write_summary(self, summary) -> None:
            pass

        def save_npz(self, rel, arrays, compressed=False):
            return self.path / rel

        def write_json(self, rel, obj):
            return self.path / rel

        def truncate_after(self, step: int) -> list[dict]:
            sync("knobsim:truncated")  # process 0 has rewritten the files
            return [r for r in record.read_metrics(self.path) if r.get("step", 0) <= step]

    return LeaderRun, FollowerRun


def _multi_host_checks(tensorboard: bool) -> None:
    if tensorboard:
        raise KnobsimError("--tensorboard is single-host (each process would write event files); "
                           "drop it, or run on one host")


def shared_run_dir(out, overwrite: bool = False, tensorboard: bool = False):
    """A new run directory for a multi-host run: process 0 creates it, the others wait."""
    from knobsim.io import rundir as record

    _multi_host_checks(tensorboard)
    if out is None:
        raise KnobsimError("a multi-host run needs --out DIR on a filesystem every host shares")
    leader, follower = _run_classes()
    if jax.process_index() == 0:
        record.check_out_dir(out, overwrite=overwrite)
        if overwrite:
            record.remove_run_dir(out)
        run = leader.create(out)
    else:
        run = follower(out)
    sync("knobsim:run-dir")  # (if process 0 failed, JAX's heartbeat stops the others)
    return run


def existing_run_dir(path, tensorboard: bool = False):
    """A run directory to resume: written by process 0 only in a multi-host run."""
    from knobsim.io import rundir as record

    if not multi_process():
        return record.RunDir(path)
    _multi_host_checks(tensorboard)
    leader, follower = _run_classes()
    return (leader if jax.process_index() == 0 else follower)(path)
