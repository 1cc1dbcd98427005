"""On-device sampling of the synthetic language: jax.random, fixed shapes, no host traffic.

A batch is (B, T + 1) character tokens: inputs are [:, :-1], targets [:, 1:]. Each row
starts at a word boundary with its first word drawn from the stationary distribution, so
every row is a window of the stationary word chain. Enough words are drawn that their
characters always cover the window (every word costs at least min_len + 1 characters).

Categorical draws over the lexicon use Walker's alias method (O(1) per draw, two gathers),
which matters: inverse-CDF search over 4096 words inside the word scan was the sampler's
whole cost. Probabilities are stored in float32, so sampled frequencies match the exact
tables to about 1e-7 relative, far below any loss difference we measure.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from knobsim.data.language import ALPHABET, Language


class Tables(NamedTuple):
    """The language's tables as device arrays (a pytree: pass it into jitted functions)."""

    stationary_alias: tuple[jax.Array, jax.Array]  # (prob (V,), alias (V,)) for pi
    unigram_alias: tuple[jax.Array, jax.Array]  # (prob (V,), alias (V,)) for u
    successors: jax.Array  # (V, k) int32
    successor_cdf: jax.Array  # (V, k - 1) float32 inner cut points of each row's weights
    spelling: jax.Array  # (V, Lmax + 1) int32, space-padded
    lengths: jax.Array  # (V,) int32
    successor_weight: jax.Array  # () float32


def alias_table(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias method: P(i) = (prob_i + sum_{j: alias_j = i} (1 - prob_j)) / V."""
    n = len(p)
    scaled = np.asarray(p, dtype=np.float64) * n / np.sum(p)
    prob = np.ones(n)
    alias = np.arange(n)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        prob[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    return prob.astype(np.float32), alias.astype(np.int32)


def _alias_draw(table, key, shape):
    prob, alias = table
    k0, k1 = jax.random.split(key)
    i = jax.random.randint(k0, shape, 0, prob.shape[0])
    return jnp.where(jax.random.uniform(k1, shape) < prob[i], i, alias[i])


@functools.lru_cache(maxsize=8)
def _host_tables(lang: Language) -> tuple:
    """The tables the host computes, once per language (a Language hashes by identity, and
    build_language returns the same object for the same config). Vose's loop is Python over
    every word: ~0.2 s per table at 131,072 words, paid by every run of a sweep or an
    experiment before this cache."""
    cdf = np.cumsum(lang.successor_probs, axis=1)[:, :-1]
    return alias_table(lang.stationary), alias_table(lang.unigram), cdf


def device_tables(lang: Language) -> Tables:
    stationary, unigram, cdf = _host_tables(lang)
    return Tables(
        stationary_alias=tuple(map(jnp.asarray, stationary)),
        unigram_alias=tuple(map(jnp.asarray, unigram)),
        successors=jnp.asarray(lang.successors, dtype=jnp.int32),
        successor_cdf=jnp.asarray(cdf, dtype=jnp.float32),
        spelling=jnp.asarray(lang.spelling, dtype=jnp.int32),
        lengths=jnp.asarray(lang.lengths, dtype=jnp.int32),
        successor_weight=jnp.asarray(lang.config.successor_weight, dtype=jnp.float32),
    )


def words_needed(lang: Language, seq: int) -> int:
    """Words per row that always cover seq + 1 characters."""
    return math.ceil((seq + 1) / (lang.min_len + 1)) + 1


def sample_words(tables: Tables, key: jax.Array, batch: int, n_words: int) -> jax.Array:
    """(batch, n_words) word ids: a window of the stationary word chain per row."""
    k_first, k_uni, k_mix, k_slot = jax.random.split(key, 4)
    first = _alias_draw(tables.stationary_alias, k_first, (batch,))
    # Everything that does not depend on the previous word is drawn up front, vectorised;
    # the scan only looks up the previous word's favourites.
    uni = _alias_draw(tables.unigram_alias, k_uni, (n_words - 1, batch))
    from_fav = jax.random.uniform(k_mix, (n_words - 1, batch)) < tables.successor_weight
    u_slot = jax.random.uniform(k_slot, (n_words - 1, batch))

    def step(prev, xs):
        uni_t, fav_t, u_t = xs
        slot = jnp.sum(u_t[:, None] >= tables.successor_cdf[prev], axis=1)
        fav = tables.successors[prev, slot]
        nxt = jnp.where(fav_t, fav, uni_t).astype(jnp.int32)
        return nxt, nxt

    _, rest = jax.lax.scan(step, first.astype(jnp.int32), (uni, from_fav, u_slot))
    return jnp.concatenate([first[None].astype(jnp.int32), rest], axis=0).T


def spell_with_index(tables: Tables, words: jax.Array, n_chars: int) -> tuple[jax.Array, jax.Array]:
    """Characters 0..n_chars-1 of the text 'w0 w1 w2 ...' for each row of word ids, and for
    each character the index (in its row) of the word it belongs to (a word's space is its)."""
    span = tables.lengths[words] + 1  # (B, W) chars per word incl. its space
    ends = jnp.cumsum(span, axis=1)  # exclusive end of each word
    t = jnp.arange(n_chars)
    widx = jnp.sum(ends[:, None, :] <= t[None, :, None], axis=-1)  # (B, n_chars)
    starts = jnp.take_along_axis(ends - span, widx, axis=1)
    word = jnp.take_along_axis(words, widx, axis=1)
    return tables.spelling[word, t[None, :] - starts], widx  # the pad column is the space


def spell(tables: Tables, words: jax.Array, n_chars: int) -> jax.Array:
    """Characters 0..n_chars-1 of the text 'w0 w1 w2 ...' for each row of word ids."""
    return spell_with_index(tables, words, n_chars)[0]


def sample_batch(tables: Tables, key: jax.Array, batch: int, seq: int, n_words: int) -> jax.Array:
    """(batch, seq + 1) int32 tokens, deterministic in key; static shapes, jit-friendly."""
    return spell(tables, sample_words(tables, key, batch, n_words), seq + 1)


def encode(text: str) -> np.ndarray:
    return np.array([ALPHABET.index(c) for c in text], dtype=np.int32)


def decode(tokens) -> str:
    return "".join(ALPHABET[int(t)] for t in np.asarray(tokens).ravel())
