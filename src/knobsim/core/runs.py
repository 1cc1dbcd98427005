"""A run directory back as a run: what `knobsim train --resume` does, as library calls.

    import knobsim as ks

    run = ks.load_run("runs/transformer-1e5-s0-...")   # its RunConfig, watch and TensorBoard
    summary = ks.resume("runs/transformer-1e5-s0-...")  # from its latest checkpoint, bit for bit

config.json holds the RunConfig and, beside it, the run's watch settings (``watch``) and
whether it writes TensorBoard files (``tensorboard``): `load_run` reads all three back, so
a resumed run records exactly what the interrupted one did.
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
    cfg: RunConfig
    watch: object  # knobsim.watch.stats.WatchConfig, or None for a run that records no knobs
    tensorboard: bool
    finished: bool  # summary.json exists

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
    from knobsim.watch.stats import WatchConfig

    path = Path(path)
    if not path.is_dir():
        raise KnobsimError(f"{path}: no such run directory")
    if not (path / "config.json").is_file():
        raise KnobsimError(f"{path} has no config.json: not a knobsim run directory")
    raw = record.read_json(path / "config.json")
    try:
        cfg = RunConfig.from_dict(raw)
        watch = WatchConfig(**raw["watch"]) if raw.get("watch") else None
    except (KeyError, TypeError) as e:
        raise KnobsimError(f"{path}/config.json is not a knobsim run config ({e})") from None
    return LoadedRun(path=path, cfg=cfg, watch=watch, tensorboard=bool(raw.get("tensorboard", False)),
                     finished=(path / "summary.json").exists())


def resume(path, on_chunk: Callable | None = None, loaded: LoadedRun | None = None) -> dict:
    """Continue an unfinished run from its latest checkpoint, bit for bit, and return its
    summary (what `knobsim train --resume PATH` runs)."""
    from knobsim.core import parallel
    from knobsim.core.train import train
    from knobsim.data.language import build_language

    run = loaded or load_run(path)
    if run.finished:
        raise KnobsimError(f"{run.path}: this run is already finished (summary.json exists)")
    rd = parallel.existing_run_dir(run.path, run.tensorboard)
    return train(run.cfg, run=rd, on_chunk=on_chunk, lang=build_language(run.cfg.language),
                 watch=run.watch, tensorboard=run.tensorboard, resume=True,
                 extra_config={"tensorboard": run.tensorboard})
