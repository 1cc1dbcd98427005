"""A run's programs, state and data: what one call of the training loop works on
(knobsim.core.train), built once before the first chunk, and its two operations, a chunk of
steps and an evaluation."""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from knobsim.config import RunConfig
from knobsim.core import parallel
from knobsim.core.programs import (Programs, data_pool, eval_tokens, init_state, programs_for,
                                   stack_states)
from knobsim.core.state import TrainState, seed_keys, unflat_params
from knobsim.data.language import Language, build_language
from knobsim.data.sampler import device_tables, words_needed
from knobsim.errors import KnobsimError


@dataclasses.dataclass
class Session:
    """Everything one call of the loop works on: built once, before the first chunk."""

    cfg: RunConfig
    seeds: list[int]
    lang: Language
    progs: Programs
    state: TrainState  # stacked over a leading seed axis when vmapped
    tables: object
    pool: object  # the finite-data pool, or None
    ev_tokens: jax.Array
    vmapped: bool

    @classmethod
    def build(cls, cfg: RunConfig, seeds, lang, vmapped: bool, init_params=None) -> "Session":
        """``init_params`` (flat, by leaf path): start from these weights (a fine-tune)."""
        lang = lang or build_language(cfg.language)
        tables = device_tables(lang)
        n_words = words_needed(lang, cfg.train.seq)
        progs = programs_for(cfg, n_words, watch=cfg.watch)
        if init_params is not None:
            params0 = unflat_params(cfg, init_params)
            states = [TrainState(jnp.zeros((), jnp.int32), params0, progs.opt_init(params0),
                                 seed_keys(seeds[0])["data"])]
        else:
            states = [init_state(cfg, progs, seed=sd) for sd in seeds]
        pools = [data_pool(cfg, tables, n_words, seed=sd) for sd in seeds]
        if vmapped:
            if cfg.train.pool_tokens and len(seeds) > 1:
                raise KnobsimError("finite-data pools are per seed; train seeds one by one with a pool")
            state = stack_states(states)
        else:
            (state,) = states
        pool = pools[0]
        ev_tokens = eval_tokens(cfg, tables, n_words)
        if progs.mesh is not None:  # [parallel] replicated state and tables, eval set split
            state, tables, pool = parallel.place_replicated((state, tables, pool), progs.mesh)
            ev_tokens = parallel.place_eval_tokens(ev_tokens, progs.mesh)
        return cls(cfg, list(seeds), lang, progs, state, tables, pool, ev_tokens, vmapped)

    def evaluate(self, params) -> np.ndarray:
        fn = self.progs.eval_many if self.vmapped else self.progs.eval_loss
        return np.atleast_1d(np.asarray(jax.device_get(fn(params, self.ev_tokens)), dtype=np.float64))

    def run_chunk(self, n: int, ref):
        """Run ``n`` steps as one jitted call; returns (metrics (S, n), watch output, seconds).
        A watched run's chunk also returns knob statistics, measured from ``ref``."""
        t0 = time.perf_counter()
        p = self.progs
        if self.cfg.watch is not None:
            self.state, metrics = p.watched_chunk(self.state, ref, self.tables, self.pool,
                                                  jnp.int32(n), self.cfg.train.chunk)
        else:
            fn = p.chunk_many if self.vmapped else p.chunk
            self.state, metrics = fn(self.state, self.tables, self.pool, n)
        metrics = jax.device_get(metrics)  # the one host sync per chunk
        watch_out = metrics.pop("watch", None)
        metrics = {k: np.asarray(v)[..., :n].reshape(len(self.seeds), n) for k, v in metrics.items()}
        return metrics, watch_out, time.perf_counter() - t0
