"""Multi-host run directories: one run directory, written by process 0.

Every process of a multi-host run (core/parallel.py, docs/devices.md) runs the same program
on its own devices and computes the same (replicated) numbers, so one writer is enough:
process 0 writes config, metrics, summary, weights and knob records. Orbax checkpoints are
written by all processes together (each its own shards, process 0 the metadata), so every
process opens the same directory: a multi-host run needs --out on a filesystem that every
host sees.

    shared_run_dir(out, cfg)     a new run: process 0 creates it, the others wait
    existing_run_dir(path, cfg)  a run to resume (a plain RunDir with one process)
"""

from __future__ import annotations

from pathlib import Path

import jax

from knobsim.errors import KnobsimError
from knobsim.io import rundir as record


def multi_process() -> bool:
    return jax.process_count() > 1


def sync(name: str) -> None:
    """A barrier across processes (nothing with one process)."""
    if multi_process():
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


class LeaderRun(record.RunDir):
    """Process 0: writes the run directory as a single-host run does."""

    def truncate_after(self, step: int) -> list[dict]:
        # Metrics and knob records past the checkpoint are dropped here, before the others
        # look (no two processes unlink one file).
        rows = super().truncate_after(step)
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


def _check(cfg) -> None:
    """What a multi-host run cannot do (``cfg``: its RunConfig)."""
    if cfg.watch is not None and cfg.watch.tensorboard:
        raise KnobsimError("--tensorboard is single-host (each process would write event files); "
                           "drop it, or run on one host")


def shared_run_dir(out, cfg, overwrite: bool = False) -> record.RunDir:
    """A new run directory for a multi-host run of ``cfg``: process 0 creates it (as
    ``--out`` with ``--overwrite`` would), the others wait for it."""
    _check(cfg)
    if out is None:
        raise KnobsimError("a multi-host run needs --out DIR on a filesystem every host shares")
    out = Path(out)
    if jax.process_index() == 0:
        record.check_out_dir(out, overwrite=overwrite)
        if overwrite:
            record.remove_run_dir(out)
        run = LeaderRun.create(out)
    else:
        run = FollowerRun(out)
    sync("knobsim:run-dir")  # (if process 0 failed, JAX's heartbeat stops the others)
    return run


def existing_run_dir(path, cfg) -> record.RunDir:
    """The run directory of ``cfg`` to resume: a plain RunDir with one process; in a
    multi-host run, written by process 0 only."""
    if not multi_process():
        return record.RunDir(path)
    _check(cfg)
    return (LeaderRun if jax.process_index() == 0 else FollowerRun)(path)
