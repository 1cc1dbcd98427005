"""The host loop: chunks of steps, and what happens between them.

    train(cfg, run)            one seed; writes the run directory through hooks (hooks.py)
    train_seeds(cfg, seeds)    several seeds in one vmapped program

The loop only sees chunks (programs.py): it runs one, hands the results to each hook in
turn (metrics rows, knob records, TensorBoard, the divergence guard, the checkpoint policy,
a graceful stop), then reports progress. Everything here is arranged around four pieces:
:class:`Session` (programs, state and data of a run), :func:`_hooks` (what a run records),
:func:`_run_chunks` (the loop) and :func:`_summaries` (what it returns and writes last).
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
    tensorboard: bool = False,
    init_params: dict[str, np.ndarray] | None = None,
    reference: str = "init",
    extra_config: dict | None = None,
    resume: bool = False,
) -> dict:
    """Train ``cfg``; write to ``run`` (an io.rundir.RunDir) if given; return the summary.

    ``watch`` records knob statistics, dials and snapshots into ``run`` (watch/recorder.py);
    ``tensorboard`` also writes event files. ``init_params`` (flat, by leaf path) starts
    from given weights instead of the seed's init (fine-tuning); drift is then measured
    from them and ``reference`` names them in the records. ``extra_config`` is merged into
    config.json. With a run directory, checkpoints go to RUN/checkpoints (io/checkpoint.py);
    ``resume`` continues ``run`` from its latest checkpoint, bit for bit."""
    req = Request([run], on_chunk, watch, tensorboard, init_params, reference, extra_config, resume)
    return _train(cfg, [cfg.train.seed], lang, False, req)[0]


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
    """What one call of the loop is asked for (train's and train_seeds' arguments)."""

    runs: list  # one io.rundir.RunDir (or None: write nothing) per seed
    on_chunk: Callable[[ChunkReport], None] | None = None
    watch: knobs.WatchConfig | None = None  # record knob statistics, dials, snapshots
    tensorboard: bool = False
    init_params: dict | None = None  # start from these weights (fine-tuning)
    reference: str = "init"  # what drift is measured from, as the records name it
    extra_config: dict | None = None  # merged into config.json
    resume: bool = False  # continue runs[0] from its latest checkpoint

    def check(self, vmapped: bool) -> None:
        if vmapped and (self.watch is not None or self.tensorboard or self.init_params is not None):
            raise KnobsimError("watching, TensorBoard and fine-tuning take one seed at a time")
        if (self.watch is not None or self.tensorboard) and self.runs[0] is None:
            raise KnobsimError("watching and TensorBoard write into a run directory; give one")


@dataclasses.dataclass(frozen=True)
class _Start:
    """Where this segment of the run starts (step 0, or a resumed checkpoint's)."""

    step: int
    ref: object  # the reference weights drift is measured from (None when not watching)
    rows0: list | None  # the metrics logged before the checkpoint (resume only)
    first_eval: np.ndarray  # the eval loss at step 0 (per seed)
    snaps: frozenset  # steps whose weights are snapshotted (watching only)


def _stops(cfg: RunConfig, snaps: set[int]):
    """Where each chunk ends: multiples of the chunk length (where evaluations fall) and,
    when watching, also exactly at the snapshot steps."""
    tc = cfg.train

    def next_stop(step: int) -> int:
        stop = min((step // tc.chunk + 1) * tc.chunk, tc.steps)
        return min([stop] + [s for s in snaps if s > step])

    return next_stop


def _rows(step: int, n: int, per_step: int, metrics: dict, ev, i: int) -> list[dict]:
    rows = [{"step": step - n + j + 1, "tokens": (step - n + j + 1) * per_step,
             **{k: float(v[i, j]) for k, v in metrics.items()}} for j in range(n)]
    if ev is not None:
        rows[-1]["eval_loss"] = float(ev[i])
    return rows


def _hooks(s: Session, req: Request, ckpt, st: _Start, segments=None):
    """The hooks of a run, in the order they see each chunk. ``segments``: core/segments.py."""
    cfg, run0, watch = s.cfg, req.runs[0], req.watch
    hooks: list[H.Hook] = [H.MetricsHook(req.runs)]
    if watch is not None:
        from knobsim.watch.recorder import WatchRecorder

        rec = WatchRecorder(run0, s.progs.names, sizing.param_shapes(cfg.model.arch, cfg.model.shape),
                            s.progs.sample, watch, cfg.train.steps, req.reference)
        if req.resume:
            rec.truncate_after(st.step)
        hooks.append(H.WatchHook(rec, watch, set(st.snaps), s.progs.names, s.progs.sample))
    if req.tensorboard:
        from knobsim.watch.recorder import TensorBoardLog

        hooks.append(H.TensorBoardHook(TensorBoardLog(run0.path / "tensorboard"), s.progs.names))
    threshold = DIVERGED_FACTOR * max(float(np.max(st.first_eval)), math.log(VOCAB))
    hooks.append(H.DivergenceGuard(threshold, cfg.optim.lr, ckpt))
    if ckpt is not None:
        hooks.append(H.CheckpointHook(ckpt, cfg.train.steps, cfg.train.ckpt_every, st.ref))
        if segments is not None:
            hooks.append(G.SegmentsHook(run0, ckpt, *segments))
    hooks.append(H.StopGuard(None if run0 is None else run0.path))
    return hooks


@dataclasses.dataclass
class _Progress:
    step: int
    last_eval: np.ndarray
    chunk_losses: np.ndarray | None = None
    steady_tokens: int = 0  # tokens and seconds after the segment's first chunk (which compiles)
    steady_s: float = 0.0

    def tokens_per_s(self, fallback: float) -> float:
        return self.steady_tokens / self.steady_s if self.steady_s > 0 else fallback


def _run_chunks(s: Session, hooks, prog: _Progress, next_stop, ref, watched, on_chunk) -> None:
    tc = s.cfg.train
    per_step, n_seeds = tc.tokens_per_step, len(s.seeds)
    begin = prog.step
    while prog.step < tc.steps:
        stop = next_stop(prog.step) if watched else min(prog.step + tc.chunk, tc.steps)
        n = stop - prog.step
        metrics, watch_out, dt = s.run_chunk(n, ref, watched)
        if prog.step > begin:  # the first chunk of every segment (the start, a resume) compiles
            prog.steady_tokens += n * per_step * n_seeds
            prog.steady_s += dt
        prog.step += n
        ev = None
        if prog.step % tc.eval_every == 0 or prog.step == tc.steps:
            ev = prog.last_eval = s.evaluate(s.state.params)
        rows = [_rows(prog.step, n, per_step, metrics, ev, i) for i in range(n_seeds)]
        c = H.Chunk(prog.step, n, s.state, metrics, rows, ev, watch_out)
        for h in hooks:
            h.chunk(c)
        prog.chunk_losses = metrics["loss"].mean(axis=1)
        if on_chunk is not None:
            tps = prog.tokens_per_s(n * per_step * n_seeds / dt)
            on_chunk(ChunkReport(prog.step, tc.steps, prog.step * per_step,
                                 float(np.mean(prog.chunk_losses)), tps,
                                 None if ev is None else float(np.mean(ev)), c.report_watch))


def _losses_from_log(rows0, cfg, next_stop, watched):
    """A run resumed from its final checkpoint trains nothing: its last chunk's mean train
    loss and its last evaluation come from the metrics it logged."""
    tc = cfg.train
    stops, s_ = [0], 0
    while s_ < tc.steps:
        s_ = next_stop(s_) if watched else min(s_ + tc.chunk, tc.steps)
        stops.append(s_)
    last = [r["loss"] for r in rows0 if stops[-2] < r["step"] <= tc.steps and "loss" in r]
    chunk_losses = np.array([np.asarray(last, np.float32).mean()])
    last_eval = np.array([next(r["eval_loss"] for r in reversed(rows0) if "eval_loss" in r)])
    return chunk_losses, last_eval


def _begin(s: Session, req: Request, ckpt) -> _Start:
    """Restore (resume) or start fresh: where the segment starts, its reference weights,
    the rows logged before it, the first evaluation and the snapshot steps."""
    runs, watch = req.runs, req.watch
    start, ref, rows0 = 0, None, None
    if req.resume:
        if ckpt is None:
            raise KnobsimError("resuming needs the run directory of a single-seed run")
        like_ref = s.state.params if watch is not None else None
        s.state, ref = ckpt.restore(s.state, ref_like=like_ref)
        start = int(s.state.step)
        rows0 = runs[0].truncate_after(start)  # drop what was logged after the checkpoint
    else:
        for sd, run in zip(s.seeds, runs):
            if run is not None:
                c = dataclasses.replace(s.cfg, train=dataclasses.replace(s.cfg.train, seed=sd))
                extra = dict(req.extra_config or {})
                if watch is not None:
                    extra["watch"] = dataclasses.asdict(watch)
                run.write_config({**c.to_dict(), **extra})
    if watch is not None and ref is None:
        # The reference is a copy: the state's own buffers are donated to each chunk.
        ref = jax.tree.map(jnp.copy, s.state.params)
    first_eval = np.array([rows0[0]["eval_loss"]]) if req.resume else s.evaluate(s.state.params)
    snaps = frozenset(knobs.snapshot_steps(s.cfg.train.steps)) if watch is not None and watch.snapshots else frozenset()
    return _Start(start, ref, rows0, first_eval, snaps)


def _train(cfg: RunConfig, seeds: list[int], lang, vmapped: bool, req: Request) -> list[dict]:
    """The host loop: build the session, start (or resume), run the chunks through the
    hooks, summarise. Every file a run writes is written by a hook or by io/."""
    t_start = time.perf_counter()
    STOP["signal"] = None
    req.check(vmapped)
    s = Session.build(cfg, seeds, lang, vmapped, req.watch, req.init_params)
    ckpt = None
    if req.runs[0] is not None and not vmapped:
        from knobsim.io.checkpoint import Checkpointer

        ckpt = Checkpointer(req.runs[0].path, keep=cfg.train.keep)
    hooks: list[H.Hook] = []
    try:
        st = _begin(s, req, ckpt)
        prog = _Progress(st.step, st.first_eval)
        earlier = G.earlier_segments(req.runs[0], st.step) if req.resume else []
        this_segment = functools.partial(G.segment, prog, st.step, t_start, cfg.train.tokens_per_step * len(seeds))
        hooks = _hooks(s, req, ckpt, st, None if ckpt is None else (earlier, this_segment))
        if not req.resume:
            for h in hooks:
                h.begin(s.state, st.first_eval)
        watched = req.watch is not None
        next_stop = _stops(cfg, set(st.snaps))
        _run_chunks(s, hooks, prog, next_stop, st.ref, watched, req.on_chunk)
        if prog.chunk_losses is None:  # resumed from the final checkpoint: nothing to train
            prog.chunk_losses, prog.last_eval = _losses_from_log(st.rows0, cfg, next_stop, watched)
        timing = G.timing([*earlier, this_segment()])
        watch_hook = next((h for h in hooks if isinstance(h, H.WatchHook)), None)
        last_watch = None if watch_hook is None else watch_hook.last
        summaries = _summaries(s, req.runs, prog, st.first_eval, timing, req.reference, last_watch)
    finally:  # every file closed, whatever ended the run (the end, divergence, a stop, an error)
        H.close_all(hooks or ([ckpt] if ckpt is not None else []))
    return summaries


def _unstack(tree, n: int) -> list:
    return [jax.tree.map(lambda x: x[i], tree) for i in range(n)]


def _summaries(s: Session, runs, prog: _Progress, first_eval, timing: dict, reference, last_watch):
    """One summary per seed; each run directory gets its final weights and summary.json."""
    cfg, tc, lang = s.cfg, s.cfg.train, s.lang
    # The peak of every device the batch is split over (one device's peak, measured, times
    # the mesh size): MFU is the share of all the hardware used.
    n_devices = parallel.n_devices(s.progs.mesh)
    peak = hardware.peak_flops(cfg.dtype) * n_devices
    f6n, fattn = flops_per_token(cfg)
    floor = lang.entropy_rate
    tokens_per_s = timing["tokens_per_s"]  # all seeds together when vmapped; every segment
    summaries = []
    # One copy to the host, sliced there (an op per leaf and seed on the device compiled a
    # slice per shape).
    host_params = (_unstack(jax.device_get(s.state.params), len(s.seeds))
                   if s.vmapped and any(r is not None for r in runs) else None)
    for i, (sd, run) in enumerate(zip(s.seeds, runs)):
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
            summary["knobs"] = {"reference": reference,
                                **{k: float(v[-1]) for k, v in last_watch["global"].items()}}
        if run is not None:
            from knobsim.core.state import flat_params

            params_i = host_params[i] if s.vmapped else s.state.params
            run.save_params(flat_params(params_i))
            run.write_summary(summary)
        summaries.append(summary)
    return summaries
