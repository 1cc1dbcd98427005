"""Planning a run: from options to a validated RunConfig, allocating nothing."""

from __future__ import annotations

import math
import os

from knobsim.config import (
    LanguageConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
    WatchConfig,
    format_count,
)
from knobsim.core.optim import default_lr
from knobsim.core.state import canonical_dtype
from knobsim.data.language import VOCAB
from knobsim.errors import KnobsimError
from knobsim.models import sizing

# Default token budget: Chinchilla's ~20 tokens per knob (Hoffmann et al. 2022), bounded
# below so tiny models see enough text to learn letters, and above so that the default
# `knobsim train --params 1e5` finishes in well under a minute on a 2-core laptop.
TOKENS_PER_PARAM = 20
MIN_DEFAULT_TOKENS = 1_000_000
MAX_DEFAULT_TOKENS = 2_000_000
TARGET_CHUNKS = 40  # progress updates per run; each is one jitted call


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def pick_chunk(steps: int, target: int) -> int:
    """A chunk length near ``target`` that divides ``steps`` if one is close, so that the
    run compiles a single chunk program (a remainder chunk would compile a second one)."""
    target = max(1, min(steps, target))
    for k in range(target, max(1, target // 2) - 1, -1):
        if steps % k == 0:
            return k
    return target


def _shape(arch: str, params: int, seq: int, shape):
    """The model's shape: sized from the budget, or the given one (the family's Shape, or a
    dict of its dims), checked by counting it."""
    if shape is None:
        return sizing.shape_for_budget(arch, params, VOCAB, seq)
    shape = sizing.as_shape(arch, shape)
    try:
        sizing.count_params(arch, shape)
    except (TypeError, ValueError, ZeroDivisionError) as e:
        raise KnobsimError(f"shape {shape.to_dict()} is not a {arch} shape ({e!r})") from None
    return shape


def _check_memory(arch: str, shape, n_params: int, batch: int, seq: int) -> None:
    """Refuse a run that would not fit in this machine's available memory (80% of it)."""
    need = sizing.memory_bytes(arch, shape, n_params, batch, seq)
    have = _available_memory()
    if need > 0.8 * have:
        raise KnobsimError(
            f"training {format_count(n_params)} knobs at batch {batch} x seq {seq} needs "
            f"about {need / 2**30:.1f} GiB but this machine has {have / 2**30:.1f} GiB "
            "available; use a smaller --params or --batch"
        )


def plan_run(
    *,
    params: int,
    arch: str = "transformer",
    tokens: int | None = None,
    steps: int | None = None,
    batch: int = 16,
    seq: int = 64,
    lr: float | None = None,
    seed: int = 0,
    warmup: int | None = None,
    chunk: int | None = None,
    pool_tokens: int = 0,
    ckpt_every: int | None = None,
    keep: int = 2,
    eval_every: int | None = None,
    language: LanguageConfig = LanguageConfig(),
    check_memory: bool = True,
    dtype: str = "float32",
    shape=None,
    watch: WatchConfig | None = None,
    devices: int | None = None,
) -> RunConfig:
    """Resolve and validate everything a run needs, allocating nothing. The model's shape is
    sized from the ``params`` budget, or given as ``shape`` (the family's Shape or a dict of
    its dims, e.g. a pre-trained run's ``cfg.model.shape``; ``params`` then only names the
    budget). ``watch``: what the run records (None: no knobs); ``devices``: how many devices
    the batch is split over (None: every device JAX sees)."""
    sizing.family(arch)  # an unknown --arch fails here, before anything else
    dtype = canonical_dtype(dtype)
    if batch < 1 or seq < 2:
        raise KnobsimError(f"--batch must be >= 1 and --seq >= 2, got batch={batch}, seq={seq}")
    if devices is not None and (isinstance(devices, bool) or not isinstance(devices, int) or devices < 1):
        raise KnobsimError(f"--devices must be a positive whole number, got {devices!r}")
    if tokens is not None and steps is not None:
        raise KnobsimError("give --tokens or --steps, not both")
    shape = _shape(arch, params, seq, shape)
    count = sizing.count_params(arch, shape)
    per_step = batch * seq
    if steps is None:
        if tokens is None:
            tokens = min(max(TOKENS_PER_PARAM * count.total, MIN_DEFAULT_TOKENS), MAX_DEFAULT_TOKENS)
        if tokens < per_step:
            raise KnobsimError(
                f"--tokens {tokens:,} is less than one step of batch x seq = {per_step:,} "
                f"tokens; ask for at least {per_step:,}"
            )
        steps = math.ceil(tokens / per_step)
    if steps < 1:
        raise KnobsimError(f"--steps must be at least 1, got {steps}")
    if pool_tokens and pool_tokens < seq:
        raise KnobsimError(f"--pool-tokens {pool_tokens:,} is less than one sequence of {seq}; ask for more")
    if lr is None:
        lr = default_lr(arch, count.total)
    if not (math.isfinite(lr) and lr > 0):
        raise KnobsimError(f"--lr must be a positive number, got {lr}")
    if check_memory:
        _check_memory(arch, shape, count.total, batch, seq)
    k = chunk or pick_chunk(steps, max(1, steps // TARGET_CHUNKS))
    ev = eval_every or max(k, steps // 10)
    ev = max(k, (ev // k) * k)  # evaluations fall on chunk boundaries
    if keep < 1:
        raise KnobsimError(f"--keep must be at least 1, got {keep}")
    # Checkpoints fall on chunk boundaries too (a resumed run then replays the very same
    # compiled chunks, so its bits match an uninterrupted run); by default four per run.
    ck = max(k, steps // 4) if ckpt_every is None else ckpt_every
    if ck < 0:
        raise KnobsimError(f"--ckpt-every must be >= 0, got {ck}")
    ck = 0 if ck == 0 else max(k, math.ceil(ck / k) * k)
    return RunConfig(
        language=language,
        model=ModelConfig(arch=arch, budget=params, shape=shape,
                          n_params_total=count.total, n_params_nonembedding=count.nonembedding),
        optim=OptimConfig(lr=float(lr), warmup_steps=warmup if warmup is not None else min(100, max(1, steps // 10))),
        train=TrainConfig(seed=seed, batch=batch, seq=seq, steps=steps, chunk=k, eval_every=ev,
                          pool_tokens=pool_tokens, ckpt_every=ck, keep=keep),
        dtype=dtype,
        watch=watch,
        devices=devices,
    )


def flops_per_token(cfg: RunConfig) -> tuple[float, float]:
    """(6N, 6N + attention): training FLOPs per token, N = all knobs (the tied unembedding
    is a real matmul; lookups are not, a <1% overcount at our vocab of 27).
    Attention adds 12 L T D per token (Kaplan et al. 2020, Table 1, fwd+bwd, causal
    counted in full)."""
    six_n = 6.0 * cfg.model.n_params_total
    attention = sizing.family(cfg.model.arch).attention_flops(cfg.model.shape, cfg.train.seq)
    return six_n, six_n + attention
