"""The compiled programs of a run: a pure step, a scanned chunk of steps under one jit.

    train_step(state, tables) -> (state, metrics)   pure: samples its batch on the device
    chunk = jit(lax.scan(train_step) x K)           the host sees chunks only

The batch of step s is drawn from fold_in(key, s), so the data stream is a function of the
seed and the step alone: chunk sizes do not change it, and a resumed run sees the same data.

A watched run (``watch=stats.WatchConfig()``) uses ``watched_chunk`` instead: the same
step, plus knob statistics computed in the jit (watch/stats.py) against a reference (the
initial or pre-trained weights). It loops over ``n_active`` <= K steps (a traced argument),
so the host can stop a chunk exactly at a snapshot step (1, 2, 4, 8, ...) without compiling
a program per length; its losses and weights are bit-identical to the unwatched program's.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from knobsim.config import RunConfig
from knobsim.core import parallel
from knobsim.core.optim import current_lr, make_optimizer
from knobsim.core.state import DTYPES, TrainState, canonical_dtype, loss_fn, seed_keys
from knobsim.data.sampler import Tables, sample_batch
from knobsim.models import sizing
from knobsim.watch import stats as knobs

# Incremented each time a step is traced: tests check one compile per shape.
TRACE_COUNT = {"train_step": 0, "watched_step": 0}


@dataclasses.dataclass(frozen=True)
class Programs:
    """The compiled pieces of one run: built once per (model shape, batch, seq, steps)."""

    init: Callable  # key -> params
    chunk: Callable  # (state, tables, pool, n_steps) -> (state, metrics[K])
    step: Callable  # (state, tables, pool) -> (state, metrics): the same step, unscanned
    eval_loss: Callable  # (params, eval_tokens) -> loss
    tx: optax.GradientTransformation
    opt_init: Callable  # params -> the optimizer state: tx.init as one program, not an op per leaf
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


class PoolOrders(NamedTuple):
    """A chunk's view of the pool: the tokens and the orders of every epoch its steps read
    (epochs ``first`` .. ``first + len(perms) - 1``), drawn once for the chunk. pool_rows
    draws two orders every step, each a permutation of the whole pool: at 32M characters
    (500k rows) that made a 1e5-knob step over 10x slower than on fresh text."""

    tokens: jax.Array
    first: jax.Array
    perms: jax.Array  # [epochs, n_pool]


def pool_orders(tokens: jax.Array, key: jax.Array, step: jax.Array, batch: int, n_steps: int) -> PoolOrders:
    """The orders that steps ``step`` .. ``step + n_steps - 1`` read: the same permutations
    as pool_rows draws (epoch e's is keyed by fold_in(key, -1 - e)), so the same rows."""
    n_pool = tokens.shape[0]
    first = (step * batch) // n_pool
    last = ((step + n_steps) * batch - 1) // n_pool
    span = (n_steps * batch) // n_pool + 2  # epochs n_steps * batch rows can touch (static)

    def order(e):  # a permutation of 500k rows takes ~0.4 s on one core: only those read
        return jax.lax.cond(e <= last, lambda: jax.random.permutation(jax.random.fold_in(key, -1 - e), n_pool),
                            lambda: jnp.zeros(n_pool, jnp.int32))

    return PoolOrders(tokens, first, jnp.stack([order(first + j) for j in range(span)]))


def _ordered_rows(pool: PoolOrders, step: jax.Array, batch: int) -> jax.Array:
    n_pool = pool.tokens.shape[0]
    pos = step * batch + jnp.arange(batch)
    return pool.perms[pos // n_pool - pool.first, pos % n_pool]


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
    rule = fam.lr_multiplier
    abstract = jax.eval_shape(functools.partial(fam.init, shape=cfg.model.shape), jax.random.key(0))
    mults = jax.tree_util.tree_map_with_path(
        lambda p, _: float(rule(sizing.leaf_path(p), cfg.model.shape)), abstract)
    return None if all(m == 1.0 for m in jax.tree.leaves(mults)) else mults


def _step_fns(cfg: RunConfig, n_words: int, tx, apply, compute, mesh):
    """(advance, train_step, chunk): one optimizer step, the same step as the unwatched
    program traces it, and K of them under lax.scan."""
    b, t = cfg.train.batch, cfg.train.seq

    def batch_for(state: TrainState, tables: Tables, pool):
        key = jax.random.fold_in(state.key, state.step)
        if pool is None:  # unlimited data: a fresh window of the language every step
            tokens = sample_batch(tables, key, b, t, n_words)
        elif isinstance(pool, PoolOrders):  # in a chunk: the chunk's orders, drawn once
            tokens = pool.tokens[_ordered_rows(pool, state.step, b)]
        else:  # a single step
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
        pool = chunk_pool(pool, state, b, n_steps)
        return jax.lax.scan(lambda s, _: train_step(s, tables, pool), state, None, length=n_steps)

    return advance, train_step, chunk


def chunk_pool(pool, state: TrainState, batch: int, n_steps: int):
    """What a chunk of ``n_steps`` reads its batches from: None (fresh text), or the pool
    with its orders for those steps (PoolOrders)."""
    return None if pool is None else pool_orders(pool, state.key, state.step, batch, n_steps)


def _watched_chunk_fn(advance, watch: knobs.WatchConfig, sample: dict, batch: int):
    """The watched chunk: ``advance`` plus knob statistics, over ``n_active`` <= K steps."""

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
        pool = chunk_pool(pool, state, batch, length)

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

    return watched_chunk


def eval_loss_fn(cfg: RunConfig) -> Callable:
    """(params, eval_tokens_EBT1) -> the mean loss over the fixed eval set (eval_tokens), in
    the run's compute dtype: the one eval loss of a run (its evaluations and a fine-tune's
    loss on the run's language). Pure; the caller jits it."""
    apply = functools.partial(sizing.family(cfg.model.arch).apply, shape=cfg.model.shape)
    compute = DTYPES[canonical_dtype(cfg.dtype)]

    def eval_loss(params, eval_tokens_EBT1):
        losses = jax.lax.map(lambda tok: loss_fn(params, tok, apply, compute), eval_tokens_EBT1)
        return losses.mean()

    return eval_loss


def build_programs(cfg: RunConfig, n_words: int, watch: knobs.WatchConfig | None = None) -> Programs:
    fam = sizing.family(cfg.model.arch)
    shape = cfg.model.shape
    apply = functools.partial(fam.apply, shape=shape)
    compute = DTYPES[canonical_dtype(cfg.dtype)]
    tx = make_optimizer(cfg.optim, cfg.train.steps)
    mults = lr_multipliers(cfg)
    if mults is not None:
        tx = _with_lr_multipliers(tx, mults)
    # [parallel] None with one device (or cfg.devices == 1): the programs are unchanged.
    mesh = parallel.data_mesh(n=cfg.devices)
    parallel.check_batch(cfg.train.batch, mesh)
    advance, train_step, chunk = _step_fns(cfg, n_words, tx, apply, compute, mesh)
    names = tuple(sizing.param_shapes(cfg.model.arch, shape))
    sample = watched_chunk = None
    if watch is not None:
        sample = knobs.sample_knobs(sizing.param_shapes(cfg.model.arch, shape),
                                    watch.knobs_per_tensor, watch.sample_seed)
        watched_chunk = jax.jit(_watched_chunk_fn(advance, watch, sample, cfg.train.batch), static_argnums=5,
                                donate_argnums=0)

    eval_loss = eval_loss_fn(cfg)
    return Programs(
        init=jax.jit(functools.partial(fam.init, shape=shape)),
        chunk=jax.jit(chunk, static_argnums=3, donate_argnums=0),
        step=jax.jit(train_step),
        eval_loss=jax.jit(eval_loss),
        tx=tx,
        opt_init=jax.jit(tx.init),
        chunk_many=jax.jit(jax.vmap(chunk, in_axes=(0, None, None, None)), static_argnums=3,
                           donate_argnums=0),
        eval_many=jax.jit(jax.vmap(eval_loss, in_axes=(0, None))),
        watched_chunk=watched_chunk,
        sample=sample,
        names=names,
        mesh=mesh,
    )


# Programs built for the host loop, kept for the process (newest last, at most _KEEP): a
# rerun of the same configuration in one process (a resumed run, the next seed of a sweep
# point, an experiment's repeats) reuses the jitted programs, skipping their tracing and
# compilation. The key is everything the programs are built from: the whole config (but
# the seed, which only init_state reads), the words per sequence, the watch settings and
# the device mesh. The same programs, so the same bits.
_BUILT: dict[str, Programs] = {}
_KEEP = 8


def programs_for(cfg: RunConfig, n_words: int, watch: knobs.WatchConfig | None = None) -> Programs:
    """build_programs, memoised within the process (see _BUILT)."""
    unseeded = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=0))
    key = json.dumps([dataclasses.asdict(unseeded), n_words, repr(watch), repr(parallel.data_mesh(n=cfg.devices))],
                     sort_keys=True, default=repr)
    progs = _BUILT.pop(key, None) or build_programs(cfg, n_words, watch=watch)
    _BUILT[key] = progs
    while len(_BUILT) > _KEEP:
        _BUILT.pop(next(iter(_BUILT)))
    return progs


def init_state(cfg: RunConfig, progs: Programs, seed: int | None = None) -> TrainState:
    keys = seed_keys(cfg.train.seed if seed is None else seed)
    params = progs.init(keys["init"])
    state = TrainState(jnp.zeros((), jnp.int32), params, progs.opt_init(params), keys["data"])
    return parallel.place_replicated(state, progs.mesh)  # [parallel] no-op on one device


def eval_tokens(cfg: RunConfig, tables: Tables, n_words: int) -> jax.Array:
    """The fixed evaluation set, (E, 32, T+1): drawn from the *language's* eval stream, so
    every run on one language and sequence length is scored on the same text, whatever its
    seed or batch (comparisons across sizes and seeds carry no eval-set noise)."""
    key = jax.random.fold_in(jax.random.key(cfg.language.seed), 0xE7A1)
    n_batches = max(1, cfg.train.eval_seqs // EVAL_BATCH)
    keys = jax.random.split(key, n_batches)
    return _eval_sampler(EVAL_BATCH, cfg.train.seq, n_words)(tables, keys)


@functools.lru_cache(maxsize=None)
def _eval_sampler(batch: int, seq: int, n_words: int):
    """One jitted sampler per shape, the tables an argument (not baked-in constants): every
    later run in the process reuses it instead of tracing and compiling it again."""
    return jax.jit(jax.vmap(lambda tables, k: sample_batch(tables, k, batch, seq, n_words),
                            in_axes=(None, 0)))


_sample_pool = jax.jit(sample_batch, static_argnums=(2, 3, 4))


@jax.jit
def stack_states(states: list[TrainState]) -> TrainState:
    """Seeds' states stacked on a leading axis, as one program (per leaf, eagerly, each
    shape compiled its own stack op)."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def data_pool(cfg: RunConfig, tables: Tables, n_words: int, seed: int | None = None):
    """Finite-data mode: ceil(pool_tokens / seq) sequences drawn once, or None."""
    if not cfg.train.pool_tokens:
        return None
    n_seqs = max(cfg.train.batch, math.ceil(cfg.train.pool_tokens / cfg.train.seq))
    key = seed_keys(cfg.train.seed if seed is None else seed)["pool"]
    return _sample_pool(tables, key, n_seqs, cfg.train.seq, n_words)
