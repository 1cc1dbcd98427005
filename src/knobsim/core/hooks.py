"""What happens between chunks: small hooks the host loop calls in order (levanter's hooks).

Each hook sees a :class:`Chunk` (the results of one jitted chunk, on the host) and does one
thing with it: write the run directory's files, record knob statistics, write TensorBoard
events, stop a diverged run, save a checkpoint, honour a stop signal. The loop itself
(train.py) does no I/O: every file a run writes is written here or by io/ (the recorders
they call); a run without a run directory simply has fewer hooks.

    hook.begin(state, first_eval)   a fresh run, after the step-0 evaluation
    hook.chunk(c)                   after every chunk, in list order; may raise to stop
    hook.end(state, summaries)      the run trained to its last step; summaries per seed
    hook.close()                    always, once (normal end, divergence, stop, error)
"""

from __future__ import annotations

import dataclasses
import signal

import jax
import numpy as np

from knobsim.core.state import flat_params
from knobsim.errors import KnobsimError
from knobsim.watch import stats as knobs


class Stopped(KnobsimError):
    """A graceful stop (SIGINT/SIGTERM): checkpoint written, files closed."""


# Set by a signal handler (the CLI installs it); the host loop stops after the current chunk.
STOP = {"signal": None}


@dataclasses.dataclass
class Chunk:
    """One chunk's results on the host. ``rows[i]`` are seed i's metrics rows."""

    step: int  # steps done after this chunk
    n: int  # steps in this chunk
    state: object  # the TrainState after the chunk (device arrays)
    metrics: dict  # name -> (n_seeds, n) host arrays
    rows: list  # per seed: [{"step", "tokens", <metrics>..., "eval_loss"?}]
    eval_loss: np.ndarray | None  # (n_seeds,) when this chunk ended on an evaluation
    watch_out: dict | None = None  # the watched program's stacked knob statistics
    # Set by WatchHook for the hooks after it and for progress reports:
    watch_rows: dict | None = None  # the recorded rows of this chunk ({"tensor", "global", "knobs"})
    watch_steps: np.ndarray | None = None  # their steps
    report_watch: dict | None = None  # ChunkReport.watch


class Hook:
    def begin(self, state, first_eval: np.ndarray) -> None:
        pass

    def chunk(self, c: Chunk) -> None:
        pass

    def end(self, state, summaries: list[dict]) -> None:
        pass

    def close(self) -> None:
        pass


class RunFilesHook(Hook):
    """Each seed's run directory (None entries write nothing): config.json (the seed's
    RunConfig, exactly) and the step-0 row when a run starts, metrics.jsonl rows after every
    chunk, the final weights (params.npz) and summary.json at the end."""

    def __init__(self, runs, configs, vmapped: bool = False):
        self.runs, self.configs, self.vmapped = list(runs), list(configs), vmapped

    def begin(self, state, first_eval):
        for i, (run, cfg) in enumerate(zip(self.runs, self.configs)):
            if run is not None:
                run.write_config(cfg.to_dict())
                run.append_metrics([{"step": 0, "tokens": 0, "eval_loss": first_eval[i]}])

    def chunk(self, c):
        for run, rows in zip(self.runs, c.rows):
            if run is not None:
                run.append_metrics(rows)

    def end(self, state, summaries):
        if all(run is None for run in self.runs):
            return
        if self.vmapped:  # one copy to the host, sliced there (a slice per leaf and seed on
            host = jax.device_get(state.params)  # the device compiled one per shape)
            per_seed = [jax.tree.map(lambda x: x[i], host) for i in range(len(self.runs))]
        else:
            per_seed = [state.params]
        for run, params, summary in zip(self.runs, per_seed, summaries):
            if run is not None:
                run.save_params(flat_params(params))
                run.write_summary(summary)

    def close(self):
        for run in self.runs:
            if run is not None:
                run.close()


class WatchHook(Hook):
    """Knob statistics, dials and snapshots into RUN/watch (watch/recorder.py)."""

    def __init__(self, recorder, watch: knobs.WatchConfig, snaps: set[int], names, sample):
        self.recorder, self.watch, self.snaps = recorder, watch, snaps
        self.names, self.sample = list(names), sample
        self.last = None  # the last recorded rows (the summary's knob statistics)

    def begin(self, state, first_eval):
        self.recorder.write_index()
        host0 = jax.tree.map(lambda x: np.array(x, copy=True), state.params)
        # Step 0 on the host in numpy: no second program to compile for one row.
        w0 = knobs.watch_stats(host0, host0, None, None, self.sample, xp=np)
        self.recorder.record(np.array([0]), jax.tree.map(lambda x: np.asarray(x)[None], w0))
        if self.watch.snapshots:
            self.recorder.snapshot(0, flat_params(host0))

    def chunk(self, c):
        steps_here = np.arange(c.step - c.n + 1, c.step + 1)
        keep = steps_here % self.watch.every == 0
        out = jax.tree.map(lambda x: np.asarray(x)[:c.n], c.watch_out)
        w = {"tensor": {k: v[keep] for k, v in out["tensor"].items()},
             "global": {k: v[keep] for k, v in out["global"].items()},
             "knobs": out["knobs"][keep]}
        self.recorder.record(steps_here[keep], w)
        if c.step in self.snaps:
            self.recorder.snapshot(c.step, flat_params(c.state.params, copy=True))
        if keep.any():
            self.last = w
            c.watch_rows, c.watch_steps = w, steps_here[keep]
            c.report_watch = {"names": self.names, "steps": steps_here[keep], **w,
                              "knob_tensor": self.recorder.knob_tensor,
                              "knob_index": self.recorder.knob_index}


class TensorBoardHook(Hook):
    """Seed 0's scalars, knob statistics and weight histograms as TensorBoard events."""

    def __init__(self, log, names):
        self.log, self.names = log, list(names)

    def begin(self, state, first_eval):
        self.log.scalars([{"step": 0, "eval_loss": first_eval[0]}])
        self.log.histograms(0, flat_params(state.params, copy=True))
        self.log.flush()

    def chunk(self, c):
        self.log.scalars(c.rows[0])
        if c.watch_rows is not None:
            self.log.knob_scalars(c.watch_steps, self.names, c.watch_rows)
        if c.eval_loss is not None:
            self.log.histograms(c.step, flat_params(c.state.params, copy=True))
        self.log.flush()

    def close(self):
        self.log.close()


class DivergenceGuard(Hook):
    """Stop (exit code 3) at a loss that is not finite or worse than knowing nothing."""

    def __init__(self, threshold: float, lr: float, ckpt=None):
        self.threshold, self.lr, self.ckpt = threshold, lr, ckpt

    def chunk(self, c):
        loss = c.metrics["loss"]
        bad = ~np.isfinite(loss) | (loss > self.threshold)
        if not bad.any():
            return
        first_bad = int(np.min(np.where(bad)[1])) + c.step - c.n + 1
        what = "not finite" if not np.all(np.isfinite(loss)) else (
            f"above {self.threshold:.1f} nats, worse than knowing nothing")
        kept = f"; the last good checkpoint (step {self.ckpt.latest_step()}) is kept" if self.ckpt else ""
        raise KnobsimError(
            f"training diverged: the loss is {what} at step {first_bad} (lr {self.lr:g}), "
            f"likely a learning rate too high; try a smaller --lr{kept}", exit_code=3)


class CheckpointHook(Hook):
    """The checkpoint policy: at the start, every ``every`` steps, at the end, and on a stop
    signal (checkpoints fall on chunk boundaries, so a resumed run replays the same chunks)."""

    def __init__(self, ckpt, steps: int, every: int, ref=None):
        self.ckpt, self.steps, self.every, self.ref = ckpt, steps, every, ref

    def begin(self, state, first_eval):
        self.ckpt.save(state, ref=self.ref)  # a good state to fall back on from the very start

    def chunk(self, c):
        if (c.step == self.steps or (self.every and c.step % self.every == 0)
                or STOP["signal"] is not None):
            self.ckpt.save(c.state, ref=self.ref)

    def close(self):
        self.ckpt.close()


class StopGuard(Hook):
    """A SIGINT/SIGTERM seen during the chunk ends the run here (after its checkpoint)."""

    def __init__(self, run_path=None):
        self.run_path = run_path

    def chunk(self, c):
        sig = STOP["signal"]
        if sig is None:
            return
        where = f"; resume with: knobsim train --resume {self.run_path}" if self.run_path is not None else ""
        raise Stopped(f"stopped by {signal.Signals(sig).name} at step {c.step}, checkpoint saved{where}",
                      exit_code=128 + sig)


def close_all(hooks) -> None:
    for h in hooks:
        h.close()
