"""A run directory back as a run: what `knobsim train --resume` does, as library calls.

    import knobsim as ks

    run = ks.load_run("runs/transformer-1e5-s0-...")   # its RunConfig (watch, TensorBoard...)
    summary = ks.resume("runs/transformer-1e5-s0-...")  # from its latest checkpoint, bit for bit

config.json is exactly the run's RunConfig (what it records, TensorBoard, devices and a
fine-tune's source included), so a resumed run records exactly what the interrupted one
did. Run directories written before issue 24 kept the watch settings and a ``tensorboard``
flag beside the RunConfig; they read back into the same RunConfig (config.RunConfig.from_dict).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from knobsim.config import RunConfig
from knobsim.errors import KnobsimError


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A run directory's configuration, read back from its config.json."""

    path: Path
    cfg: RunConfig  # the whole run, as it was started
    finished: bool  # summary.json exists

    @property
    def watch(self):
        """What the run records (its ``cfg.watch``; None: no knobs)."""
        return self.cfg.watch

    def latest_checkpoint(self) -> int | None:
        """The step of its newest checkpoint (None: none written yet)."""
        from knobsim.io.checkpoint import Checkpointer

        ckpt = Checkpointer(self.path, keep=self.cfg.train.keep)
        try:
            return ckpt.latest_step()
        finally:
            ckpt.close()


def load_run(path) -> LoadedRun:
    """Read a run directory's config.json back (a KnobsimError names what is wrong)."""
    from knobsim.io import rundir as record

    path = Path(path)
    if not path.is_dir():
        raise KnobsimError(f"{path}: no such run directory")
    if not (path / "config.json").is_file():
        raise KnobsimError(f"{path} has no config.json: not a knobsim run directory")
    raw = record.read_json(path / "config.json")
    try:
        cfg = RunConfig.from_dict(raw)
    except (KeyError, TypeError, AttributeError, KnobsimError) as e:
        raise KnobsimError(f"{path}/config.json is not a knobsim run config ({e})") from None
    if raw.get("tensorboard") and raw.get("watch") is None:  # (written before issue 24)
        record.warn(f"{path} wrote TensorBoard files without recording knobs; a resume of it "
                    "writes no more of them (TensorBoard is now part of the knob records)")
    return LoadedRun(path=path, cfg=cfg, finished=(path / "summary.json").exists())


def resume(path, on_chunk: Callable | None = None, loaded: LoadedRun | None = None,
           devices: int | None = None) -> dict:
    """Continue an unfinished run from its latest checkpoint, bit for bit, and return its
    summary (what `knobsim train --resume PATH` runs). ``loaded``: the run as load_run read
    it (or with its config changed where a resume may: ``devices``). ``devices``: split the
    batch over this many devices instead of the recorded count (the same run, other bits)."""
    from knobsim.core.train import train
    from knobsim.data.language import build_language
    from knobsim.io.multihost import existing_run_dir

    run = loaded or load_run(path)
    if devices is not None:
        run = dataclasses.replace(run, cfg=dataclasses.replace(run.cfg, devices=devices))
    if run.finished:
        raise KnobsimError(f"{run.path}: this run is already finished (summary.json exists)")
    _check_devices(run)
    rd = existing_run_dir(run.path, run.cfg)
    return train(run.cfg, run=rd, on_chunk=on_chunk, lang=build_language(run.cfg.language), resume=True)


def _check_devices(run: LoadedRun) -> None:
    """A run split over N devices resumes bit for bit on N devices; say how to get them
    where this process has fewer (`knobsim train --resume` makes N CPU devices itself)."""
    import jax

    n, have = run.cfg.devices, len(jax.devices())
    if n is None or n <= have:
        return
    hint = (f"start Python with XLA_FLAGS=--xla_force_host_platform_device_count={n} (or use "
            f"`knobsim train --resume`), or resume with devices={have} (the same run, other bits)"
            if jax.default_backend() == "cpu" else f"resume with devices={have} (the same run, other bits)")
    raise KnobsimError(f"{run.path} was split over {n} devices (its config.json) but JAX sees "
                       f"{have}; {hint}")
