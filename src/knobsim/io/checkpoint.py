"""Checkpoints of the whole train state through Orbax: atomic, the last ``keep`` kept.

The state is everything a resumed run needs to continue bit for bit: parameters, optimizer
state (moments, step counts, injected hyperparameters), the step, and the data key. The
sampler needs no state of its own: the batch of step s is drawn from fold_in(key, s).
Orbax writes each checkpoint into a temporary directory and renames it when complete, so a
kill at any instant leaves the previous checkpoint intact and readable.

    RUN/checkpoints/<step>/...   (Orbax's layout; `orbax.checkpoint` reads it without knobsim)
"""

from __future__ import annotations

import logging
from pathlib import Path

import jax

from knobsim.errors import KnobsimError

CKPT_DIR = "checkpoints"


def _quiet_orbax():
    # Orbax logs every save at INFO through absl; a training run's terminal is not the place.
    for name in ("absl", "orbax", "orbax.checkpoint"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _saveable(state, ref=None) -> dict:
    """TrainState -> a plain pytree Orbax can write (typed PRNG keys become raw key data).
    ``ref`` is the reference weights of a watched run (drift is measured from them)."""
    tree = {
        "step": state.step,
        "params": state.params,
        "opt_state": state.opt_state,
        "key": jax.random.key_data(state.key),
    }
    if ref is not None:
        tree["ref"] = ref
    return tree


class Checkpointer:
    """Save and restore TrainStates under RUN/checkpoints."""

    def __init__(self, run_path: Path, keep: int = 3):
        import orbax.checkpoint as ocp

        _quiet_orbax()
        self._ocp = ocp
        self.directory = (Path(run_path) / CKPT_DIR).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=False
            ),
        )

    def save(self, state, ref=None) -> int:
        step = int(state.step)
        if step in self.manager.all_steps():
            return step
        self.manager.save(step, args=self._ocp.args.StandardSave(_saveable(state, ref)))
        self.manager.wait_until_finished()
        return step

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, like, step: int | None = None, ref_like=None):
        """Restore into the structure of ``like`` (a freshly initialised TrainState).
        Returns (state, ref): ``ref`` only when ``ref_like`` is given (watched runs)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise KnobsimError(f"no checkpoint in {self.directory}; nothing to resume from")
        target = jax.tree.map(self._ocp.utils.to_shape_dtype_struct, _saveable(like, ref_like))
        try:
            r = self.manager.restore(step, args=self._ocp.args.StandardRestore(target))
        except (ValueError, KeyError, FileNotFoundError) as e:
            raise KnobsimError(
                f"checkpoint {step} in {self.directory} does not match this run's config "
                f"({type(e).__name__}); resume with the config it was written with"
            ) from None
        # Rebuilt as like's own type (a TrainState): this module needs nothing from core.
        state = like._replace(step=r["step"], params=r["params"], opt_state=r["opt_state"],
                              key=jax.random.wrap_key_data(r["key"]))
        return state, r.get("ref")

    def close(self) -> None:
        self.manager.close()
