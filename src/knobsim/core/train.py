"""The host loop: chunks of steps, and what happens between them.

    train(cfg, run)            one seed; writes the run directory through hooks (hooks.py)
    train_seeds(cfg, seeds)    several seeds in one vmapped program

A run is its RunConfig: what it records (``cfg.watch``, TensorBoard included), on how many
devices, from which weights (``cfg.finetune``). :func:`_train` is the loop, top to bottom:
build the :class:`Session` (programs, state, data), start or resume (:func:`_begin`), run
the chunks and hand each to the hooks in turn (:func:`_hooks`: the run directory's files,
knob records, TensorBoard, the divergence guard, the checkpoint policy, a graceful stop),
then summarise (:func:`_summaries`). The loop writes no file itself; the hooks and io/ do.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from knobsim.config import RunConfig
from knobsim.core import hardware, parallel
from knobsim.core import hooks as H
from knobsim.core import segments as G
from knobsim.core.hooks import STOP, Stopped  # noqa: F401  (the CLI's signal handler sets STOP)
from knobsim.core.plan import flops_per_token
from knobsim.core.session import Session
from knobsim.data.language import VOCAB, Language
from knobsim.errors import KnobsimError
from knobsim.models import sizing
from knobsim.watch import stats as knobs

# A loss this far above what a model that knows nothing scores means the run has diverged,
# even when every number is still finite (with Adam and clipping a huge lr rarely makes NaNs,
# it makes a confidently wrong model).
DIVERGED_FACTOR = 2.0


@dataclasses.dataclass
class ChunkReport:
    """What the host learns after each chunk (for progress bars and live views)."""

    step: int
    steps: int
    tokens: int
    loss: float  # mean train loss of the chunk
    tokens_per_s: float
    eval_loss: float | None
    # Watched runs: the chunk's recorded knob rows (host numpy), for live views:
    # {"names", "steps" (n,), "tensor": {stat: (n, P)}, "global": {stat: (n,)},
    #  "knobs" (n, K), "knob_tensor" (K,), "knob_index" (K,)}; None otherwise.
    watch: dict | None = None


def train(
    cfg: RunConfig,
    run=None,
    on_chunk: Callable[[ChunkReport], None] | None = None,
    lang: Language | None = None,
    *,
    watch: knobs.WatchConfig | None = None,
    init_params: dict[str, np.ndarray] | None = None,
    resume: bool = False,
) -> dict:
    """Train ``cfg``; write to ``run`` (an io.rundir.RunDir) if given; return the summary.

    What the run records is ``cfg.watch`` (knob statistics, dials, snapshots, TensorBoard);
    ``watch`` here is short for ``dataclasses.replace(cfg, watch=watch)``. ``init_params``
    (flat, by leaf path) starts from given weights instead of the seed's init: a fine-tune,
    whose ``cfg.finetune`` names them (drift is measured from them). With a run directory,
    checkpoints go to RUN/checkpoints (io/checkpoint.py); ``resume`` continues ``run`` from
    its latest checkpoint, bit for bit."""
    if watch is not None:
        cfg = dataclasses.replace(cfg, watch=watch)
    return _train(cfg, [cfg.train.seed], lang, False, Request([run], on_chunk, init_params, resume))[0]


def train_seeds(
    cfg: RunConfig,
    seeds: list[int],
    runs: list | None = None,
    on_chunk: Callable[[ChunkReport], None] | None = None,
    lang: Language | None = None,
) -> list[dict]:
    """Train one config under several seeds at once: one compiled program, the train state
    vmapped over a leading seed axis. Returns one summary per seed (each run's config.json
    records its own seed). Whether this beats seeds one after another depends on the size:
    benchmarks/bench_seeds.py measures it."""
    return _train(cfg, list(seeds), lang, True, Request(runs or [None] * len(seeds), on_chunk))


# -- the loop -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Request:
    """What one call of the loop is asked for beyond the config (train's and train_seeds'
    arguments)."""

    runs: list  # one io.rundir.RunDir (or None: write nothing) per seed
    on_chunk: Callable[[ChunkReport], None] | None = None
    init_params: dict | None = None  # start from these weights (a fine-tune)
    resume: bool = False  # continue runs[0] from its latest checkpoint

    def check(self, cfg: RunConfig, vmapped: bool) -> None:
        if vmapped and (cfg.watch is not None or self.init_params is not None):
            raise KnobsimError("watching, TensorBoard and fine-tuning take one seed at a time")
        if cfg.watch is not None and self.runs[0] is None:
            raise KnobsimError("watching and TensorBoard write into a run directory; give one")
        if self.resume and (vmapped or self.runs[0] is None):
            raise KnobsimError("resuming needs the run directory of a single-seed run")


@dataclasses.dataclass(frozen=True)
class _Start:
    """Where this segment of the run starts: step 0, or a resumed checkpoint."""

    step: int
    ref: object  # the reference weights drift is measured from (None when not watching)
    first_eval: np.ndarray  # the eval loss at step 0 (per seed)
    last_eval: np.ndarray  # the latest eval loss (per seed): step 0's, or the checkpoint's
    chunk_losses: np.ndarray | None  # the checkpoint's last chunk's mean train loss (resume)
    earlier: list  # the segments before this one (resume; core/segments.py)
    snaps: frozenset  # steps whose weights are snapshotted (watching only)


@dataclasses.dataclass
class _Progress:
    """Where the loop is. Throughput counts this segment's chunks after its first (which
    compiles): their tokens and seconds."""

    step: int
    last_eval: np.ndarray  # the latest eval loss (per seed)
    chunk_losses: np.ndarray | None  # the latest chunk's mean train loss (per seed)
    begin: int  # the segment's first step
    steady_tokens: int = 0
    steady_s: float = 0.0

    def advance(self, n: int, tokens: int, seconds: float) -> None:
        if self.step > self.begin:  # the first chunk of every segment (the start, a resume) compiles
            self.steady_tokens += tokens
            self.steady_s += seconds
        self.step += n

    def tokens_per_s(self, fallback: float) -> float:
        return self.steady_tokens / self.steady_s if self.steady_s > 0 else fallback


def _train(cfg: RunConfig, seeds: list[int], lang, vmapped: bool, req: Request) -> list[dict]:
    """The host loop, top to bottom."""
    t_start = time.perf_counter()
    STOP["signal"] = None
    req.check(cfg, vmapped)
    s = Session.build(cfg, seeds, lang, vmapped, req.init_params)
    ckpt = _checkpointer(cfg, req.runs[0], vmapped)
    tc, per_step_all_seeds = cfg.train, cfg.train.tokens_per_step * len(seeds)
    hooks: list[H.Hook] = []
    try:
        st = _begin(s, req, ckpt)  # step 0 evaluated, or the latest checkpoint restored
        prog = _Progress(st.step, st.last_eval, st.chunk_losses, begin=st.step)
        this_segment = functools.partial(G.segment, prog, st.step, t_start, per_step_all_seeds)
        hooks = _hooks(s, req, ckpt, st, prog, this_segment)
        if not req.resume:  # config.json, the step-0 row and knob records, checkpoint 0
            for h in hooks:
                h.begin(s.state, st.first_eval)
        next_stop = _stops(cfg, st.snaps)
        while prog.step < tc.steps:
            n = next_stop(prog.step) - prog.step
            metrics, watch_out, dt = s.run_chunk(n, st.ref)  # the one host sync per chunk
            prog.advance(n, n * per_step_all_seeds, dt)
            ev = None
            if prog.step % tc.eval_every == 0 or prog.step == tc.steps:
                ev = prog.last_eval = s.evaluate(s.state.params)
            prog.chunk_losses = metrics["loss"].mean(axis=1)
            rows = [_rows(prog.step, n, tc.tokens_per_step, metrics, ev, i) for i in range(len(seeds))]
            c = H.Chunk(prog.step, n, s.state, metrics, rows, ev, watch_out)
            for h in hooks:  # files, knob records, TensorBoard, divergence, checkpoint, a stop
                h.chunk(c)
            if req.on_chunk is not None:
                req.on_chunk(_report(cfg, prog, c, fallback_tps=n * per_step_all_seeds / dt))
        timing = G.timing([*st.earlier, this_segment()])
        summaries = _summaries(s, prog, st.first_eval, timing, _last_watch(hooks))
        for h in hooks:  # the final weights and summary.json
            h.end(s.state, summaries)
    finally:  # every file closed, whatever ended the run (the end, divergence, a stop, an error)
        H.close_all(hooks or ([ckpt] if ckpt is not None else []))
    return summaries


def _checkpointer(cfg: RunConfig, run, vmapped: bool):
    """RUN/checkpoints of a single-seed run with a run directory; None otherwise."""
    if run is None or vmapped:
        return None
    from knobsim.io.checkpoint import Checkpointer

    return Checkpointer(run.path, keep=cfg.train.keep)


def _reference(cfg: RunConfig) -> str:
    """What drift is measured from, as the records name it."""
    return "init" if cfg.finetune is None else f"pretrained:{cfg.finetune.source}"


def _begin(s: Session, req: Request, ckpt) -> _Start:
    """A fresh start (the reference weights copied, step 0 evaluated) or a resume: the
    checkpoint restored and what was logged after it dropped (it is logged again)."""
    watch = s.cfg.watch
    snaps = frozenset(knobs.snapshot_steps(s.cfg.train.steps) if watch is not None and watch.snapshots else ())
    if not req.resume:
        # The reference is a copy: the state's own buffers are donated to each chunk.
        ref = None if watch is None else jax.tree.map(jnp.copy, s.state.params)
        first_eval = s.evaluate(s.state.params)
        return _Start(0, ref, first_eval, first_eval, None, [], snaps)
    step, earlier, kept = _resume_point(s.cfg, req.runs[0], ckpt)
    s.state, ref = ckpt.restore(s.state, step=step, ref_like=None if watch is None else s.state.params)
    rows0 = req.runs[0].truncate_after(step)
    first_eval = np.array([rows0[0]["eval_loss"]])
    if kept is None:  # the chunks after the checkpoint set both
        return _Start(step, ref, first_eval, first_eval, None, earlier, snaps)
    losses = np.array([kept["train_loss"]])
    return _Start(step, ref, first_eval, np.array([kept["eval_loss"]]), losses, earlier, snaps)


def _resume_point(cfg: RunConfig, run, ckpt) -> tuple[int, list, dict | None]:
    """The checkpoint a resume restores (the latest), the segments before it and the losses
    segments.json kept at it. A run stopped after its final checkpoint trains nothing, so
    its summary takes its losses from there; a run directory from before they were kept
    (issue 24) restores the checkpoint before instead and replays the last stretch, the
    same bits (its wall time then counts that stretch twice)."""
    step = ckpt.latest_step()
    if step is None:
        raise KnobsimError(f"no checkpoint in {ckpt.directory}; nothing to resume from")
    earlier, kept = G.resume_point(run, step)
    if step == cfg.train.steps and kept is None:
        before = [k for k in ckpt.steps() if k < step]
        if not before:
            raise KnobsimError(f"{run.path}: its final checkpoint kept no losses (segments.json) and "
                               "there is no earlier checkpoint to replay from; train it again")
        step = before[-1]
        earlier, kept = G.resume_point(run, step)
    return step, earlier, kept


def _hooks(s: Session, req: Request, ckpt, st: _Start, prog: _Progress, this_segment) -> list[H.Hook]:
    """The hooks of a run, in the order they see each chunk."""
    cfg, run0, watch = s.cfg, req.runs[0], s.cfg.watch
    configs = [dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=sd)) for sd in s.seeds]
    hooks: list[H.Hook] = [H.RunFilesHook(req.runs, configs, s.vmapped)]
    if watch is not None:
        from knobsim.watch.recorder import TensorBoardLog, WatchRecorder

        shapes = sizing.param_shapes(cfg.model.arch, cfg.model.shape)
        rec = WatchRecorder(run0, s.progs.names, shapes, s.progs.sample, watch, cfg.train.steps,
                            _reference(cfg))
        hooks.append(H.WatchHook(rec, watch, set(st.snaps), s.progs.names, s.progs.sample))
        if watch.tensorboard:
            hooks.append(H.TensorBoardHook(TensorBoardLog(run0.path / "tensorboard"), s.progs.names))
    threshold = DIVERGED_FACTOR * max(float(np.max(st.first_eval)), math.log(VOCAB))
    hooks.append(H.DivergenceGuard(threshold, cfg.optim.lr, ckpt))
    if ckpt is not None:
        hooks.append(H.CheckpointHook(ckpt, cfg.train.steps, cfg.train.ckpt_every, st.ref))
        hooks.append(G.SegmentsHook(run0, ckpt, st.earlier, this_segment, prog))
    hooks.append(H.StopGuard(None if run0 is None else run0.path))
    return hooks


def _stops(cfg: RunConfig, snaps: frozenset):
    """Where each chunk ends: multiples of the chunk length (where evaluations and
    checkpoints fall) and, when watching, also exactly at the snapshot steps."""
    tc = cfg.train

    def next_stop(step: int) -> int:
        stop = min((step // tc.chunk + 1) * tc.chunk, tc.steps)
        return min([stop] + [s for s in snaps if s > step])

    return next_stop


def _rows(step: int, n: int, per_step: int, metrics: dict, ev, i: int) -> list[dict]:
    """Seed ``i``'s metrics rows of the chunk of ``n`` steps ending at ``step``."""
    rows = [{"step": step - n + j + 1, "tokens": (step - n + j + 1) * per_step,
             **{k: float(v[i, j]) for k, v in metrics.items()}} for j in range(n)]
    if ev is not None:
        rows[-1]["eval_loss"] = float(ev[i])
    return rows


def _report(cfg: RunConfig, prog: _Progress, c: H.Chunk, fallback_tps: float) -> ChunkReport:
    ev = None if c.eval_loss is None else float(np.mean(c.eval_loss))
    return ChunkReport(prog.step, cfg.train.steps, prog.step * cfg.train.tokens_per_step,
                       float(np.mean(prog.chunk_losses)), prog.tokens_per_s(fallback_tps), ev,
                       c.report_watch)


def _last_watch(hooks) -> dict | None:
    """The last recorded knob rows of a watched run (the summary's knob statistics)."""
    return next((h.last for h in hooks if isinstance(h, H.WatchHook)), None)


def _summaries(s: Session, prog: _Progress, first_eval, timing: dict, last_watch) -> list[dict]:
    """One summary per seed (RunFilesHook writes each into its run directory)."""
    cfg, tc, lang = s.cfg, s.cfg.train, s.lang
    # The peak of all the hardware the batch is split over, so that MFU is the share used:
    # one accelerator's measured peak times the mesh size; on the CPU the machine's peak
    # (measured over all its cores) once per process, as CPU devices share the cores.
    n_devices = parallel.n_devices(s.progs.mesh)
    units = jax.process_count() if jax.default_backend() == "cpu" else n_devices
    peak = hardware.peak_flops(cfg.dtype) * units
    f6n, fattn = flops_per_token(cfg)
    floor = lang.entropy_rate
    tokens_per_s = timing["tokens_per_s"]  # all seeds together when vmapped; every segment
    summaries = []
    for i, sd in enumerate(s.seeds):
        final = float(prog.last_eval[i])
        summary = {
            "arch": cfg.model.arch,
            "shape": cfg.model.shape.to_dict(),
            "n_params_total": cfg.model.n_params_total,
            "n_params_nonembedding": cfg.model.n_params_nonembedding,
            "seed": sd,
            "steps": tc.steps,
            "tokens": tc.tokens,
            "pool_tokens": tc.pool_tokens,
            "epochs": tc.tokens / tc.pool_tokens if tc.pool_tokens else None,
            "final_train_loss": float(prog.chunk_losses[i]),
            "final_eval_loss": final,
            "initial_eval_loss": float(first_eval[i]),
            "entropy_floor": floor,
            "gap_nats": final - floor,
            "gap_pct": 100.0 * (final - floor) / floor,
            "unigram_loss": lang.unigram_loss,
            "bigram_loss": lang.bigram_loss,
            "lr": cfg.optim.lr,
            "mfu": f6n * tokens_per_s / peak,
            "mfu_with_attention": fattn * tokens_per_s / peak,
            "peak_flops": peak,
            "backend": jax.default_backend(),
            "dtype": cfg.dtype,
            "devices": n_devices,
            "n_seeds_together": len(s.seeds),
            **timing,  # wall_s, tokens_per_s, train_s, train_tokens, segments: every segment
        }
        if last_watch is not None:  # the last recorded global knob statistics
            summary["knobs"] = {"reference": _reference(cfg),
                                **{k: float(v[-1]) for k, v in last_watch["global"].items()}}
        summaries.append(summary)
    return summaries
