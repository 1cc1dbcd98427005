"""Training: a pure step, a scanned chunk of steps under one jit, and the host loop.

    TrainState(step, params, opt_state, key)        a pytree, donated to each chunk
    train_step(state, tables) -> (state, metrics)   pure: samples its batch on the device
    train_chunk = jit(lax.scan(train_step) x K)     the host sees chunks only

The batch of step s is drawn from fold_in(key, s), so the data stream is a function of the
seed and the step alone: chunk sizes do not change it, and a resumed run sees the same data.

A watched run (``watch=knobs.WatchConfig()``) uses ``watched_chunk`` instead: the same
step, plus knob statistics computed in the jit (knobs.py) against a reference (the initial
or pre-trained weights). It loops over ``n_active`` <= K steps (a traced argument), so the
host can stop a chunk exactly at a snapshot step (1, 2, 4, 8, ...) without compiling a
program per length; its losses and weights are bit-identical to the unwatched program's.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import signal
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from knobsim import hardware, knobs, parallel
from knobsim.config import (
    LanguageConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
    format_count,
)
from knobsim.data.language import VOCAB, Language, build_language
from knobsim.data.sampler import Tables, device_tables, sample_batch, words_needed
from knobsim.errors import KnobsimError
from knobsim.models import sizing
from knobsim.optim import current_lr, default_lr, make_optimizer

# Default token budget: Chinchilla's ~20 tokens per knob (Hoffmann et al. 2022), bounded
# below so tiny models see enough text to learn letters, and above so that the default
# `knobsim train --params 1e5` finishes in well under a minute on a 2-core laptop.
TOKENS_PER_PARAM = 20
MIN_DEFAULT_TOKENS = 1_000_000
MAX_DEFAULT_TOKENS = 2_000_000
TARGET_CHUNKS = 40  # progress updates per run; each is one jitted call

class Stopped(KnobsimError):
    """A graceful stop (SIGINT/SIGTERM): checkpoint written, files closed."""


# Set by a signal handler (the CLI installs it); the host loop stops after the current chunk.
STOP = {"signal": None}

# A loss this far above what a model that knows nothing scores means the run has diverged,
# even when every number is still finite (with Adam and clipping a huge lr rarely makes NaNs,
# it makes a confidently wrong model).
DIVERGED_FACTOR = 2.0

# Incremented each time a step is traced: tests check one compile per shape.
TRACE_COUNT = {"train_step": 0, "watched_step": 0}


class TrainState(NamedTuple):
    step: jax.Array  # () int32: updates done so far
    params: dict
    opt_state: optax.OptState
    key: jax.Array  # data key of the run; the batch of step s uses fold_in(key, s)


# Compute dtypes: the weights (the optimizer's master copy), the optimizer state and the
# loss stay float32 whatever the compute dtype (mixed precision as in Micikevicius et al.
# 2018 and levanter/big_vision: cast the weights at use, never store them in bf16).
DTYPES = {"float32": jnp.float32, "fp32": jnp.float32, "f32": jnp.float32,
          "bfloat16": jnp.bfloat16, "bf16": jnp.bfloat16}


def canonical_dtype(name: str) -> str:
    """'bf16' -> 'bfloat16', 'fp32' -> 'float32'; a one-line error for anything else."""
    key = str(name).strip().lower()
    if key not in DTYPES:
        raise KnobsimError(f"--dtype {name!r} is not known; use float32 (default) or bf16")
    return jnp.dtype(DTYPES[key]).name


def cast_floats(tree, dtype):
    """The tree with every floating array cast to ``dtype`` (a no-op for its own dtype)."""
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def loss_fn(params, tokens_BT1, apply: Callable, dtype="float32") -> jax.Array:
    """Mean next-character cross-entropy in nats. ``dtype`` is the compute dtype: the float32
    weights are cast to it inside the differentiated function (so their gradients come back
    float32); logits and the loss are always float32."""
    if jnp.dtype(dtype) != jnp.float32:
        params = cast_floats(params, dtype)
    logits = apply(params, tokens_BT1[:, :-1]).astype(jnp.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens_BT1[:, 1:]).mean()


@dataclasses.dataclass(frozen=True)
class Programs:
    """The compiled pieces of one run: built once per (model shape, batch, seq, steps)."""

    init: Callable  # key -> params
    chunk: Callable  # (state, tables, pool, n_steps) -> (state, metrics[K])
    step: Callable  # (state, tables, pool) -> (state, metrics): the same step, unscanned
    eval_loss: Callable  # (params, eval_tokens) -> loss
    tx: optax.GradientTransformation
    chunk_many: Callable  # chunk vmapped over a leading seed axis of the state
    eval_many: Callable  # eval_loss vmapped over a leading seed axis of params
    # Watched runs only: (state, ref, tables, pool, n_active, K) -> (state, metrics[K])
    # with metrics["watch"] the knob statistics (rows past n_active are zeros).
    watched_chunk: Callable | None = None
    sample: dict | None = None  # tensor name -> flat indices of its sampled dials
    names: tuple = ()  # tensor names in flatten order (columns of per-tensor stats)
    # [parallel] the data-parallel mesh (parallel.data_mesh), None on one device.
    mesh: object = None


def pool_rows(key: jax.Array, step: jax.Array, batch: int, n_pool: int) -> jax.Array:
    """Finite data: the pool rows of step ``step``. The pool is read in epochs, each epoch
    in its own seeded order, so every row is seen once per epoch; a batch that straddles
    two epochs takes the rest from the next epoch's order."""
    pos = step * batch + jnp.arange(batch)
    epoch = pos // n_pool
    # Two candidate orders (this step's first epoch and the next) cover any straddle.
    e0 = (step * batch) // n_pool
    perm0 = jax.random.permutation(jax.random.fold_in(key, -1 - e0), n_pool)
    perm1 = jax.random.permutation(jax.random.fold_in(key, -2 - e0), n_pool)
    return jnp.where(epoch == e0, perm0[pos % n_pool], perm1[pos % n_pool])


EVAL_BATCH = 32  # sequences per evaluation forward pass (bounds eval memory)


def _with_lr_multipliers(tx: optax.GradientTransformation, mults) -> optax.GradientTransformation:
    """Scale each tensor's update by a constant: per-tensor learning rates (muP) with the
    optimizer state left exactly as ``tx`` builds it (so current_lr still reads it)."""

    def update(updates, state, params=None):
        updates, state = tx.update(updates, state, params)
        return jax.tree.map(lambda u, m: u * m if m != 1.0 else u, updates, mults), state

    return optax.GradientTransformation(tx.init, update)


def lr_multipliers(cfg: RunConfig) -> dict | None:
    """Per-tensor lr multipliers of the model's parametrization, or None (all 1)."""
    fam = sizing.family(cfg.model.arch)
    rule = getattr(fam, "lr_multiplier", None)
    if rule is None:
        return None
    abstract = jax.eval_shape(functools.partial(fam.init, shape=cfg.model.shape), jax.random.key(0))
    mults = jax.tree_util.tree_map_with_path(
        lambda p, _: float(rule(sizing.leaf_path(p), cfg.model.shape)), abstract)
    return None if all(m == 1.0 for m in jax.tree.leaves(mults)) else mults


def build_programs(cfg: RunConfig, n_words: int, watch: knobs.WatchConfig | None = None) -> Programs:
    fam = sizing.family(cfg.model.arch)
    shape = cfg.model.shape
    apply = functools.partial(fam.apply, shape=shape)
    compute = DTYPES[canonical_dtype(cfg.dtype)]
    tx = make_optimizer(cfg.optim, cfg.train.steps)
    mults = lr_multipliers(cfg)
    if mults is not None:
        tx = _with_lr_multipliers(tx, mults)
    b, t = cfg.train.batch, cfg.train.seq
    # [parallel] None with one device (or KNOBSIM_DEVICES=1): the programs are unchanged.
    mesh = parallel.data_mesh()
    parallel.check_batch(b, mesh)

    def batch_for(state: TrainState, tables: Tables, pool):
        key = jax.random.fold_in(state.key, state.step)
        if pool is None:  # unlimited data: a fresh window of the language every step
            tokens = sample_batch(tables, key, b, t, n_words)
        else:
            tokens = pool[pool_rows(state.key, state.step, b, pool.shape[0])]
        return parallel.constrain_batch(tokens, mesh)  # [parallel] split over the devices

    def advance(state: TrainState, tables: Tables, pool):
        tokens = batch_for(state, tables, pool)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, tokens, apply, compute)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": loss,
            "lr": current_lr(opt_state),
            "grad_norm": optax.tree.norm(grads),  # before clipping
            "update_norm": optax.tree.norm(updates),
            "param_norm": optax.tree.norm(params),
        }
        return TrainState(state.step + 1, params, opt_state, state.key), metrics, grads, updates

    def train_step(state: TrainState, tables: Tables, pool=None):
        TRACE_COUNT["train_step"] += 1
        state, metrics, _, _ = advance(state, tables, pool)
        return state, metrics

    def chunk(state, tables, pool, n_steps):
        return jax.lax.scan(lambda s, _: train_step(s, tables, pool), state, None, length=n_steps)

    names = tuple(sizing.param_shapes(cfg.model.arch, shape))
    sample = None
    if watch is not None:
        sample = knobs.sample_knobs(sizing.param_shapes(cfg.model.arch, shape),
                                    watch.knobs_per_tensor, watch.sample_seed)

    def watched_step(state: TrainState, ref, tables: Tables, pool):
        TRACE_COUNT["watched_step"] += 1
        state, metrics, grads, updates = advance(state, tables, pool)
        # The barrier keeps XLA from fusing the statistics into the step's own arithmetic:
        # watching reads the step's results and cannot change a bit of them.
        p, u, g = jax.lax.optimization_barrier((state.params, updates, grads))
        stats = lambda: knobs.watch_stats(p, ref, u, g, sample)  # noqa: E731
        if watch.every == 1:
            w = stats()
        else:  # skip the work on steps that are not recorded
            zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(stats))
            w = jax.lax.cond(state.step % watch.every == 0, stats, lambda: zeros)
        return state, {**metrics, "watch": w}

    def watched_chunk(state, ref, tables, pool, n_active, length):
        def run(s):
            return watched_step(s, ref, tables, pool)

        # A while loop of n_active steps writing into length-K buffers (rows past n_active
        # stay zero). Not lax.cond inside a scan: a step nested in a conditional compiles
        # differently and its floats would no longer match the unwatched program's bits.
        out = jax.eval_shape(run, state)[1]
        bufs = jax.tree.map(lambda x: jnp.zeros((length,) + x.shape, x.dtype), out)

        def body(carry):
            i, s, b = carry
            s, m = run(s)
            b = jax.tree.map(lambda buf, v: jax.lax.dynamic_update_index_in_dim(buf, v, i, 0), b, m)
            return i + 1, s, b

        _, state, bufs = jax.lax.while_loop(lambda c: c[0] < n_active, body,
                                            (jnp.zeros((), jnp.int32), state, bufs))
        return state, bufs

    def eval_loss(params, eval_tokens_EBT1):
        losses = jax.lax.map(lambda tok: loss_fn(params, tok, apply, compute), eval_tokens_EBT1)
        return losses.mean()

    return Programs(
        init=jax.jit(functools.partial(fam.init, shape=shape)),
        chunk=jax.jit(chunk, static_argnums=3, donate_argnums=0),
        step=jax.jit(train_step),
        eval_loss=jax.jit(eval_loss),
        tx=tx,
        chunk_many=jax.jit(jax.vmap(chunk, in_axes=(0, None, None, None)), static_argnums=3,
                           donate_argnums=0),
        eval_many=jax.jit(jax.vmap(eval_loss, in_axes=(0, None))),
        watched_chunk=None if watch is None else jax.jit(watched_chunk, static_argnums=5, donate_argnums=0),
        sample=sample,
        names=names,
        mesh=mesh,
    )


def seed_keys(seed: int) -> dict[str, jax.Array]:
    """Independent streams from one training seed: init, training data, the data pool."""
    root = jax.random.key(seed)
    return {"init": jax.random.fold_in(root, 0), "data": jax.random.fold_in(root, 1),
            "pool": jax.random.fold_in(root, 3)}


def init_state(cfg: RunConfig, progs: Programs, seed: int | None = None) -> TrainState:
    keys = seed_keys(cfg.train.seed if seed is None else seed)
    params = progs.init(keys["init"])
    state = TrainState(jnp.zeros((), jnp.int32), params, progs.tx.init(params), keys["data"])
    return parallel.place_replicated(state, progs.mesh)  # [parallel] no-op on one device


def eval_tokens(cfg: RunConfig, tables: Tables, n_words: int) -> jax.Array:
    """The fixed evaluation set, (E, 32, T+1): drawn from the *language's* eval stream, so
    every run on one language and sequence length is scored on the same text, whatever its
    seed or batch (comparisons across sizes and seeds carry no eval-set noise)."""
    key = jax.random.fold_in(jax.random.key(cfg.language.seed), 0xE7A1)
    n_batches = max(1, cfg.train.eval_seqs // EVAL_BATCH)
    keys = jax.random.split(key, n_batches)
    t = cfg.train.seq
    return jax.jit(jax.vmap(lambda k: sample_batch(tables, k, EVAL_BATCH, t, n_words)))(keys)


def data_pool(cfg: RunConfig, tables: Tables, n_words: int, seed: int | None = None):
    """Finite-data mode: ceil(pool_tokens / seq) sequences drawn once, or None."""
    if not cfg.train.pool_tokens:
        return None
    n_seqs = max(cfg.train.batch, math.ceil(cfg.train.pool_tokens / cfg.train.seq))
    key = seed_keys(cfg.train.seed if seed is None else seed)["pool"]
    return jax.jit(sample_batch, static_argnums=(2, 3, 4))(tables, key, n_seqs, cfg.train.seq, n_words)


def flat_params(params, copy: bool = False) -> dict[str, np.ndarray]:
    """Leaf path -> numpy array; ``copy`` when the device buffers will be donated later
    (on CPU np.asarray may share memory with them)."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return {sizing.leaf_path(p): np.array(x, copy=True) if copy else np.asarray(x) for p, x in leaves}


def unflat_params(cfg: RunConfig, flat: dict[str, np.ndarray]) -> dict:
    """The inverse of flat_params for ``cfg``'s model, checking every name and shape."""
    fam = sizing.family(cfg.model.arch)
    abstract = jax.eval_shape(functools.partial(fam.init, shape=cfg.model.shape), jax.random.key(0))

    def leaf(path, x):
        name = sizing.leaf_path(path)
        if name not in flat:
            raise KnobsimError(f"the weights have no tensor {name!r}: they belong to another model")
        w = np.asarray(flat[name])
        if w.shape != x.shape:
            raise KnobsimError(f"tensor {name} has shape {w.shape}, the model needs {x.shape}")
        return jnp.asarray(w, x.dtype)

    return jax.tree_util.tree_map_with_path(leaf, abstract)


# -- planning: from options to a validated RunConfig -----------------------------------


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
) -> RunConfig:
    """Resolve and validate everything a run needs, allocating nothing."""
    sizing.family(arch)  # an unknown --arch fails here, before anything else
    dtype = canonical_dtype(dtype)
    if batch < 1 or seq < 2:
        raise KnobsimError(f"--batch must be >= 1 and --seq >= 2, got batch={batch}, seq={seq}")
    if tokens is not None and steps is not None:
        raise KnobsimError("give --tokens or --steps, not both")
    shape = sizing.shape_for_budget(arch, params, VOCAB, seq)
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
        need = sizing.memory_bytes(arch, shape, count.total, batch, seq)
        have = _available_memory()
        if need > 0.8 * have:
            raise KnobsimError(
                f"training {format_count(count.total)} knobs at batch {batch} x seq {seq} needs "
                f"about {need / 2**30:.1f} GiB but this machine has {have / 2**30:.1f} GiB "
                "available; use a smaller --params or --batch"
            )
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
    )


# -- the host loop ----------------------------------------------------------------------


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


def flops_per_token(cfg: RunConfig) -> tuple[float, float]:
    """(6N, 6N + attention): training FLOPs per token, N = all knobs (the tied unembedding
    is a real matmul; lookups are not, a <1% overcount at our vocab of 27).
    Attention adds 12 L T D per token (Kaplan et al. 2020, Table 1, fwd+bwd, causal
    counted in full)."""
    n = cfg.model.n_params_total
    six_n = 6.0 * n
    s = cfg.model.shape
    if cfg.model.arch == "transformer":
        return six_n, six_n + 12.0 * s["n_layer"] * cfg.train.seq * s["d_model"]
    return six_n, six_n


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
    """Train ``cfg``; write to ``run`` (a record.RunDir) if given; return the summary.

    ``watch`` records knob statistics, dials and snapshots into ``run`` (knob_record.py);
    ``tensorboard`` also writes event files. ``init_params`` (flat, by leaf path) starts
    from given weights instead of the seed's init (fine-tuning); drift is then measured
    from them and ``reference`` names them in the records. ``extra_config`` is merged into
    config.json. With a run directory, checkpoints go to RUN/checkpoints (checkpoint.py);
    ``resume`` continues ``run`` from its latest checkpoint, bit for bit."""
    return _train(cfg, [cfg.train.seed], [run], on_chunk, lang, vmapped=False, watch=watch,
                  tensorboard=tensorboard, init_params=init_params, reference=reference,
                  extra_config=extra_config, resume=resume)[0]


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
    runs = runs or [None] * len(seeds)
    return _train(cfg, list(seeds), runs, on_chunk, lang, vmapped=True)


def _rows_of(watch_out: dict, keep: np.ndarray) -> dict:
    """The recorded rows of a chunk's stacked watch output."""
    return {"tensor": {k: v[keep] for k, v in watch_out["tensor"].items()},
            "global": {k: v[keep] for k, v in watch_out["global"].items()},
            "knobs": watch_out["knobs"][keep]}


def _train(cfg, seeds, runs, on_chunk, lang, vmapped, watch=None, tensorboard=False,
           init_params=None, reference="init", extra_config=None, resume=False):
    t_start = time.perf_counter()
    STOP["signal"] = None
    if vmapped and (watch is not None or tensorboard or init_params is not None):
        raise KnobsimError("watching, TensorBoard and fine-tuning take one seed at a time")
    if (watch is not None or tensorboard) and runs[0] is None:
        raise KnobsimError("watching and TensorBoard write into a run directory; give one")
    lang = lang or build_language(cfg.language)
    tables = device_tables(lang)
    n_words = words_needed(lang, cfg.train.seq)
    progs = build_programs(cfg, n_words, watch=watch)
    tc = cfg.train
    per_step = tc.tokens_per_step
    cfgs = [dataclasses.replace(cfg, train=dataclasses.replace(tc, seed=sd)) for sd in seeds]
    if init_params is not None:
        params0 = unflat_params(cfg, init_params)
        states = [TrainState(jnp.zeros((), jnp.int32), params0, progs.tx.init(params0),
                             seed_keys(seeds[0])["data"])]
    else:
        states = [init_state(cfg, progs, seed=sd) for sd in seeds]
    pools = [data_pool(cfg, tables, n_words, seed=sd) for sd in seeds]
    if vmapped:
        if tc.pool_tokens and len(seeds) > 1:
            raise KnobsimError("finite-data pools are per seed; train seeds one by one with a pool")
        state = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
        chunk_fn, eval_fn = progs.chunk_many, progs.eval_many
    else:
        (state,) = states
        chunk_fn, eval_fn = progs.chunk, progs.eval_loss
    pool = pools[0]
    ev_tokens = eval_tokens(cfg, tables, n_words)
    if progs.mesh is not None:  # [parallel] replicated state and tables, eval set split
        state, tables, pool = parallel.place_replicated((state, tables, pool), progs.mesh)
        ev_tokens = parallel.place_eval_tokens(ev_tokens, progs.mesh)

    def evaluate(params) -> np.ndarray:
        return np.atleast_1d(np.asarray(jax.device_get(eval_fn(params, ev_tokens)), dtype=np.float64))

    run0 = runs[0]
    watcher = tb = None
    ckpt = None
    if run0 is not None and not vmapped:
        from knobsim.checkpoint import Checkpointer

        ckpt = Checkpointer(run0.path, keep=tc.keep)
    start = 0
    ref = None
    if resume:
        if ckpt is None:
            raise KnobsimError("resuming needs the run directory of a single-seed run")
        like_ref = state.params if watch is not None else None
        state, ref = ckpt.restore(state, ref_like=like_ref)
        start = int(state.step)
        rows0 = run0.truncate_after(start)  # drop what was logged after the checkpoint
        first_eval = np.array([rows0[0]["eval_loss"]])
    else:
        for c, run in zip(cfgs, runs):
            if run is not None:
                extra = dict(extra_config or {})
                if watch is not None:
                    extra["watch"] = dataclasses.asdict(watch)
                run.write_config({**c.to_dict(), **extra})
    if run0 is not None and tensorboard:
        from knobsim.knob_record import TensorBoardLog

        tb = TensorBoardLog(run0.path / "tensorboard")
    snaps: set[int] = set()
    if watch is not None:
        from knobsim.knob_record import WatchRecorder

        if ref is None:
            # The reference is a copy: the state's own buffers are donated to each chunk.
            ref = jax.tree.map(jnp.copy, state.params)
        watcher = WatchRecorder(run0, progs.names, sizing.param_shapes(cfg.model.arch, cfg.model.shape),
                                progs.sample, watch, tc.steps, reference)
        if watch.snapshots:
            snaps = set(knobs.snapshot_steps(tc.steps))
        if resume:
            watcher.truncate_after(start)
        else:
            host0 = jax.tree.map(lambda x: np.array(x, copy=True), state.params)
            # Step 0 on the host in numpy: no second program to compile for one row.
            w0 = knobs.watch_stats(host0, host0, None, None, progs.sample, xp=np)
            watcher.record(np.array([0]), jax.tree.map(lambda x: np.asarray(x)[None], w0))
            if watch.snapshots:
                watcher.snapshot(0, flat_params(host0))
    if not resume:
        first_eval = evaluate(state.params)
        for i, run in enumerate(runs):
            if run is not None:
                run.append_metrics([{"step": 0, "tokens": 0, "eval_loss": first_eval[i]}])
        if tb is not None:
            tb.scalars([{"step": 0, "eval_loss": first_eval[0]}])
            tb.histograms(0, flat_params(state.params, copy=True))
            tb.flush()
        if ckpt is not None:
            ckpt.save(state, ref=ref)  # a good state to fall back on from the very start

    def next_stop(step: int) -> int:
        # Chunks end on multiples of tc.chunk (where evaluations fall) and, when watching,
        # also exactly at the snapshot steps.
        stop = min((step // tc.chunk + 1) * tc.chunk, tc.steps)
        return min([stop] + [s for s in snaps if s > step])

    step, last_eval, chunk_losses = start, first_eval, None
    last_watch = None
    diverge_at = DIVERGED_FACTOR * max(float(np.max(first_eval)), math.log(VOCAB))
    steady_tokens, steady_s = 0, 0.0
    while step < tc.steps:
        stop = next_stop(step) if watch is not None else min(step + tc.chunk, tc.steps)
        n = stop - step
        t0 = time.perf_counter()
        if watch is not None:
            state, metrics = progs.watched_chunk(state, ref, tables, pool, jnp.int32(n), tc.chunk)
        else:
            state, metrics = chunk_fn(state, tables, pool, n)
        metrics = jax.device_get(metrics)  # the one host sync per chunk
        watch_out = metrics.pop("watch", None)
        metrics = {k: np.asarray(v)[..., :n].reshape(len(seeds), n) for k, v in metrics.items()}
        dt = time.perf_counter() - t0
        if step > 0:  # the first chunk includes compilation
            steady_tokens += n * per_step * len(seeds)
            steady_s += dt
        step += n
        ev = None
        if step % tc.eval_every == 0 or step == tc.steps:
            ev = last_eval = evaluate(state.params)
        for i, run in enumerate(runs):
            rows = [
                {"step": step - n + j + 1, "tokens": (step - n + j + 1) * per_step,
                 **{k: float(v[i, j]) for k, v in metrics.items()}}
                for j in range(n)
            ]
            if ev is not None:
                rows[-1]["eval_loss"] = float(ev[i])
            if run is not None:
                run.append_metrics(rows)
            if tb is not None and i == 0:
                tb.scalars(rows)
        report_watch = None
        if watcher is not None:
            steps_here = np.arange(step - n + 1, step + 1)
            keep = steps_here % watch.every == 0
            w = _rows_of(jax.tree.map(lambda x: np.asarray(x)[:n], watch_out), keep)
            watcher.record(steps_here[keep], w)
            if stop in snaps:
                watcher.snapshot(stop, flat_params(state.params, copy=True))
            if keep.any():
                last_watch = w
                report_watch = {"names": list(progs.names), "steps": steps_here[keep], **w,
                                "knob_tensor": watcher.knob_tensor, "knob_index": watcher.knob_index}
                if tb is not None:
                    tb.knob_scalars(steps_here[keep], list(progs.names), w)
        if tb is not None:
            if ev is not None:
                tb.histograms(step, flat_params(state.params, copy=True))
            tb.flush()
        bad = ~np.isfinite(metrics["loss"]) | (metrics["loss"] > diverge_at)
        if bad.any():
            first_bad = int(np.min(np.where(bad)[1])) + step - n + 1
            what = "not finite" if not np.all(np.isfinite(metrics["loss"])) else (
                f"above {diverge_at:.1f} nats, worse than knowing nothing")
            kept = f"; the last good checkpoint (step {ckpt.latest_step()}) is kept" if ckpt else ""
            if ckpt is not None:
                ckpt.close()
            for run in runs:
                if run is not None:
                    run.close()
            raise KnobsimError(
                f"training diverged: the loss is {what} at step {first_bad} (lr {cfg.optim.lr:g}), "
                f"likely a learning rate too high; try a smaller --lr{kept}", exit_code=3)
        if ckpt is not None and (step == tc.steps or (tc.ckpt_every and step % tc.ckpt_every == 0)
                                 or STOP["signal"] is not None):
            ckpt.save(state, ref=ref)
        if STOP["signal"] is not None:
            sig = STOP["signal"]
            if ckpt is not None:
                ckpt.close()
            for run in runs:
                if run is not None:
                    run.close()
            if tb is not None:
                tb.close()
            where = f"; resume with: knobsim train --resume {run0.path}" if run0 is not None else ""
            raise Stopped(f"stopped by {signal.Signals(sig).name} at step {step}, checkpoint saved{where}",
                          exit_code=128 + sig)
        chunk_losses = metrics["loss"].mean(axis=1)
        tps = steady_tokens / steady_s if steady_s > 0 else n * per_step * len(seeds) / dt
        if on_chunk is not None:
            on_chunk(ChunkReport(step, tc.steps, step * per_step, float(np.mean(chunk_losses)), tps,
                                 None if ev is None else float(np.mean(ev)), report_watch))

    if chunk_losses is None:  # resumed from the final checkpoint: nothing left to train
        stops, s_ = [0], 0
        while s_ < tc.steps:
            s_ = next_stop(s_) if watch is not None else min(s_ + tc.chunk, tc.steps)
            stops.append(s_)
        last = [r["loss"] for r in rows0 if stops[-2] < r["step"] <= tc.steps and "loss" in r]
        chunk_losses = np.array([np.asarray(last, np.float32).mean()])
        last_eval = np.array([next(r["eval_loss"] for r in reversed(rows0) if "eval_loss" in r)])
    wall = time.perf_counter() - t_start
    tokens_per_s = (steady_tokens / steady_s if steady_s > 0
                    else tc.tokens * len(seeds) / wall if step > start else float("nan"))
    # The peak of every device the batch is split over (one device's peak, measured, times
    # the mesh size): MFU is the share of all the hardware used.
    n_devices = parallel.n_devices(progs.mesh)
    peak = hardware.peak_flops(cfg.dtype) * n_devices
    f6n, fattn = flops_per_token(cfg)
    floor = lang.entropy_rate
    summaries = []
    for i, (c, run) in enumerate(zip(cfgs, runs)):
        summary = {
            "arch": cfg.model.arch,
            "shape": cfg.model.shape,
            "n_params_total": cfg.model.n_params_total,
            "n_params_nonembedding": cfg.model.n_params_nonembedding,
            "seed": c.train.seed,
            "steps": tc.steps,
            "tokens": tc.tokens,
            "pool_tokens": tc.pool_tokens,
            "epochs": tc.tokens / tc.pool_tokens if tc.pool_tokens else None,
            "final_train_loss": float(chunk_losses[i]),
            "final_eval_loss": float(last_eval[i]),
            "initial_eval_loss": float(first_eval[i]),
            "entropy_floor": floor,
            "gap_nats": float(last_eval[i]) - floor,
            "gap_pct": 100.0 * (float(last_eval[i]) - floor) / floor,
            "unigram_loss": lang.unigram_loss,
            "bigram_loss": lang.bigram_loss,
            "lr": cfg.optim.lr,
            "tokens_per_s": tokens_per_s,  # all seeds together when vmapped
            "mfu": f6n * tokens_per_s / peak,
            "mfu_with_attention": fattn * tokens_per_s / peak,
            "peak_flops": peak,
            "backend": jax.default_backend(),
            "dtype": cfg.dtype,
            "devices": n_devices,
            "n_seeds_together": len(seeds),
            "wall_s": wall,
        }
        if last_watch is not None:  # the last recorded global knob statistics
            summary["knobs"] = {"reference": reference,
                                **{k: float(v[-1]) for k, v in last_watch["global"].items()}}
        if run is not None:
            params_i = jax.tree.map(lambda x: x[i], state.params) if vmapped else state.params
            run.save_params(flat_params(params_i))
            run.write_summary(summary)
            run.close()
        summaries.append(summary)
    if tb is not None:
        tb.close()
    if ckpt is not None:
        ckpt.close()
    if not vmapped and step > start and math.isfinite(tokens_per_s) and cfg.dtype == "float32":
        hardware.record_mfu(cfg.model.arch, cfg.model.n_params_total, f6n * tokens_per_s / peak, tokens_per_s)
    return summaries
