"""A synthetic language that reads like text and whose entropy rate is known exactly.

Construction (see DESIGN.md and docs/language.md):
  * an alphabet of 26 letters plus the space: 27 tokens, one per character;
  * a lexicon of ``n_words`` pronounceable words built from syllables (onset, vowel, coda,
    with English-like letter weights). The mean number of syllables grows with rank,
    ``syllables_base + syllables_per_decade * log10(rank)``, and the words are then sorted by
    length, so a rarer word is never shorter: word length tied to surprisal, as an efficient
    code (and Zipf's law of abbreviation) would have it. Only a word's first syllable may
    lack an onset, so vowels do not pile up;
  * the word sequence is a Markov chain: each word has ``n_successors`` favourite
    successors, drawn without replacement in proportion to the unigram u_r ∝ (r + q)^-zipf
    (the Zipf-Mandelbrot law; q = 2.7 as Mandelbrot fitted for English). With probability
    ``successor_weight`` the next word is drawn from them, otherwise from the unigram:
    P[i, j] = (1 - m) u_j + m S[i, j];
  * words are ranked by their stationary frequency pi (favourites of frequent words gain
    frequency, so pi is not exactly u), and the k-th most frequent word gets the k-th
    cheapest spelling;
  * text = words joined by single spaces; tokens = characters.

Because spaces delimit words, the text determines the word sequence, so the entropy rate
per character is exactly H_word / E_pi[len(w) + 1]: the word chain's entropy rate divided
by the mean characters per word (space included), both exact sums over the stationary
distribution pi. Everything here is numpy on the host, vectorised, done once per language:
O(V * (k + word length)): half a second at the default V = 131,072, ~10 s at 2^20.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from knobsim.config import LanguageConfig
from knobsim.errors import KnobsimError

ALPHABET = " abcdefghijklmnopqrstuvwxyz"  # token 0 is the space
VOCAB = len(ALPHABET)

_VOWELS = "aeiou"
_CONSONANTS = "bcdfghjklmnpqrstvwxyz"
# Rough English letter frequencies, so the letter distribution is uneven like real text.
_CONS_W = np.array(
    [1.5, 2.8, 4.3, 2.2, 2.0, 6.1, 0.15, 0.8, 4.0, 2.4, 6.7, 1.9, 0.1, 6.0, 6.3, 9.1, 1.0,
     2.4, 0.15, 2.0, 0.07]
)
_VOW_W = np.array([8.2, 12.7, 7.0, 7.5, 2.8])


@dataclasses.dataclass(frozen=True, eq=False)
class Language:
    """The tables of one language and its exact facts. Arrays are numpy (host)."""

    config: LanguageConfig
    words: tuple[str, ...]  # the lexicon, most frequent first
    unigram: np.ndarray  # (V,) Zipf word probabilities u, float64
    successors: np.ndarray  # (V, k) favourite successor ids, int32
    successor_probs: np.ndarray  # (V, k) their weights (rows sum to 1), float64
    stationary: np.ndarray  # (V,) stationary distribution pi of the word chain
    spelling: np.ndarray  # (V, max_len + 1) token ids, padded with spaces, int32
    lengths: np.ndarray  # (V,) letters per word (space excluded), int32

    # -- exact facts -------------------------------------------------------------------
    @functools.cached_property
    def word_entropy_rate(self) -> float:
        """H(W_t | W_{t-1}) under pi, in nats per word (exact)."""
        m = self.config.successor_weight
        u = self.unigram
        base = (1 - m) * u
        # Entropy of the unigram-only part of a row, then corrected on each row's
        # favourites, where the probability is base_j + m * s_ij (favourites are distinct).
        ent_base = -np.sum(base * np.log(base))
        b_s = base[self.successors]  # (V, k)
        p_s = b_s + m * self.successor_probs
        row_h = ent_base + np.sum(b_s * np.log(b_s), axis=1) - np.sum(p_s * np.log(p_s), axis=1)
        return float(np.dot(self.stationary, row_h))

    @functools.cached_property
    def mean_chars_per_word(self) -> float:
        """E_pi[len(w) + 1]: characters per word including its space."""
        return float(np.dot(self.stationary, self.lengths + 1))

    @functools.cached_property
    def entropy_rate(self) -> float:
        """The floor: nats per character (token) that no model can beat, exact."""
        return self.word_entropy_rate / self.mean_chars_per_word

    @functools.cached_property
    def letter_counts(self) -> np.ndarray:
        """(V, 27) float64: how often each character occurs in each word plus its space."""
        n, width = self.spelling.shape
        inside = np.arange(width)[None, :] < self.lengths[:, None]
        rows = np.broadcast_to(np.arange(n)[:, None], (n, width))
        counts = np.bincount(rows[inside] * VOCAB + self.spelling[inside],
                             minlength=n * VOCAB).reshape(n, VOCAB).astype(np.float64)
        counts[:, 0] = 1.0  # the space after the word
        return counts

    @functools.cached_property
    def char_frequencies(self) -> np.ndarray:
        """(27,) stationary character frequencies."""
        return (self.stationary @ self.letter_counts) / self.mean_chars_per_word

    @functools.cached_property
    def unigram_loss(self) -> float:
        """Loss of the best context-free model (character frequencies), nats/char."""
        f = self.char_frequencies
        f = f[f > 0]
        return float(-np.sum(f * np.log(f)))

    @functools.cached_property
    def bigram_loss(self) -> float:
        """Loss of the best previous-character model, H(X_t | X_{t-1}), nats/char (exact).

        Each word w contributes the pairs (' ', w0), (w0, w1), ..., (w_last, ' '): the char
        before a word is always the space that ended the previous one.
        """
        n, width = self.spelling.shape
        text = np.concatenate([np.zeros((n, 1), np.int64), self.spelling], axis=1)  # ' ' + w + pads
        inside = np.arange(width)[None, :] <= self.lengths[:, None]  # pairs 0..len
        a, b = text[:, :-1][inside], text[:, 1:][inside]
        w = np.broadcast_to(self.stationary[:, None], (n, width))[inside]
        pairs = np.bincount(a * VOCAB + b, weights=w, minlength=VOCAB * VOCAB).reshape(VOCAB, VOCAB)
        pairs /= pairs.sum()
        cond = pairs / np.maximum(pairs.sum(axis=1, keepdims=True), 1e-300)
        mask = pairs > 0
        return float(-np.sum(pairs[mask] * np.log(cond[mask])))

    @property
    def max_len(self) -> int:
        return int(self.lengths.max())

    @property
    def min_len(self) -> int:
        return int(self.lengths.min())

    def transition_logprob(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """log P(next word | previous word), vectorised over id arrays."""
        m = self.config.successor_weight
        p = (1 - m) * self.unigram[nxt]
        hit = self.successors[prev] == nxt[..., None]
        p = p + m * np.sum(np.where(hit, self.successor_probs[prev], 0.0), axis=-1)
        return np.log(p)

    def facts(self) -> dict:
        """The numbers a user wants before training on this language."""
        return {
            "vocab_size": VOCAB,
            "n_words": len(self.words),
            "zipf_exponent": self.config.zipf,
            "zipf_offset": self.config.zipf_offset,
            "n_successors": self.config.n_successors,
            "successor_weight": self.config.successor_weight,
            "syllables_base": self.config.syllables_base,
            "syllables_per_decade": self.config.syllables_per_decade,
            "mean_chars_per_word": self.mean_chars_per_word,
            "word_entropy_rate": self.word_entropy_rate,
            "entropy_floor": self.entropy_rate,
            "unigram_loss": self.unigram_loss,
            "bigram_loss": self.bigram_loss,
            "uniform_loss": float(np.log(VOCAB)),
            "language_seed": self.config.seed,
        }


MAX_WORDS = 1 << 20  # the largest lexicon: its tables take ~0.4 GiB on the host at 2^20
_MAX_SYLLABLES = 16


@functools.lru_cache(maxsize=2)
def _syllables(initial: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every syllable (onset?, vowel, coda?) as (S, 3) token ids padded with 0, with its
    length and probability. Only a word's first syllable may lack an onset, so vowels never
    pile up inside a word ('taiee' does not read as a word)."""
    cons = np.array([ALPHABET.index(c) for c in _CONSONANTS])
    vows = np.array([ALPHABET.index(c) for c in _VOWELS])
    cons_p, vow_p = _CONS_W / _CONS_W.sum(), _VOW_W / _VOW_W.sum()
    no_onset = 0.15 if initial else 0.0
    onset = np.r_[0, cons]; p_onset = np.r_[no_onset, (1 - no_onset) * cons_p]  # 0 = none
    coda = np.r_[0, cons]; p_coda = np.r_[0.7, 0.3 * cons_p]  # 0 = no coda
    o, v, c = (g.ravel() for g in np.meshgrid(np.arange(22), np.arange(5), np.arange(22),
                                               indexing="ij"))
    keep = p_onset[o] > 0
    o, v, c = o[keep], v[keep], c[keep]
    raw = np.stack([onset[o], vows[v], coda[c]], axis=1)
    prob = p_onset[o] * vow_p[v] * p_coda[c]
    order = np.argsort(raw == 0, axis=1, kind="stable")  # squeeze the empty onset out
    table = np.take_along_axis(raw, order, axis=1)
    return table, (table != 0).sum(axis=1), prob / prob.sum()


def _max_distinct(n_syllables: int) -> int:
    """How many distinct words of n syllables the syllable tables can spell, at most (a
    bound: some syllable strings coincide, e.g. 'ab'+'ba' = 'abb'+'a')."""
    return len(_syllables(True)[0]) * len(_syllables(False)[0]) ** (n_syllables - 1)


def _duplicates(rows: np.ndarray) -> np.ndarray:
    """Bool mask of rows equal to an earlier row (the first of each spelling is kept).
    rows: (V, W) uint8 with W a multiple of 8; hashed 8 bytes at a time, checked exactly."""
    h = np.zeros(len(rows), np.uint64)
    with np.errstate(over="ignore"):
        for col in np.ascontiguousarray(rows).view(np.uint64).T:
            h = h * np.uint64(0x9E3779B97F4A7C15) + col
            h ^= h >> np.uint64(29)
    order = np.lexsort((np.arange(len(rows)), h))
    pair = np.flatnonzero(h[order][1:] == h[order][:-1])
    same = np.all(rows[order[pair + 1]] == rows[order[pair]], axis=1)
    if not np.all(same):  # pragma: no cover - a 64-bit hash collision between two words
        _, first = np.unique(rows, axis=0, return_index=True)
        dup = np.ones(len(rows), bool)
        dup[first] = False
        return dup
    dup = np.zeros(len(rows), bool)
    dup[order[pair + 1]] = True  # the later of two equal rows (ties are sorted by index)
    return dup


def _make_lexicon(rng: np.random.Generator, cfg: LanguageConfig) -> tuple[np.ndarray, np.ndarray]:
    """(spelling (V, Lmax + 1) int32 space-padded, lengths (V,)): V distinct words, the
    cheapest to spell first. Vectorised: a few rounds of drawing and de-duplicating."""
    first_table, _, first_p = _syllables(initial=True)
    table, _, syl_p = _syllables(initial=False)
    first_table, table = first_table.astype(np.uint8), table.astype(np.uint8)
    n = cfg.n_words
    ranks = np.arange(1, n + 1)
    mean = cfg.syllables_base + cfg.syllables_per_decade * np.log10(ranks)
    n_syl = np.clip(np.floor(mean + rng.random(n)).astype(np.int64), 1, _MAX_SYLLABLES)
    for s in range(1, 4):  # only short words can run out of spellings
        if np.sum(n_syl == s) > _max_distinct(s) // 2:
            raise KnobsimError(
                f"{n:,} words cannot be spelled: {int(np.sum(n_syl == s)):,} of them get {s} "
                f"syllable{'s' * (s > 1)}, which spell at most ~{_max_distinct(s) // 2:,} distinct "
                f"words; use fewer --words or more --syllables-per-decade")
    first_cdf, cdf = np.cumsum(first_p), np.cumsum(syl_p)
    words = np.zeros((n, 3 * (_MAX_SYLLABLES + 1)), np.uint8)  # 51 -> 56 bytes below
    words = np.zeros((n, 8 * -(-words.shape[1] // 8)), np.uint8)
    todo = np.arange(n)
    for round_ in range(64):
        m = len(todo)
        width = int(n_syl[todo].max())
        u = rng.random((m, width))
        syl = table[np.minimum(np.searchsorted(cdf, u), len(cdf) - 1)]
        syl[:, 0] = first_table[np.minimum(np.searchsorted(first_cdf, u[:, 0]), len(first_cdf) - 1)]
        chars = np.where((np.arange(width)[None, :] < n_syl[todo][:, None])[..., None],
                         syl, 0).reshape(m, 3 * width)
        chars = np.take_along_axis(chars, np.argsort(chars == 0, axis=1, kind="stable"), axis=1)
        words[todo] = 0
        words[todo, : 3 * width] = chars
        bad = _duplicates(words) | ((words != 0).sum(axis=1) < 2)
        todo = np.flatnonzero(bad)
        if len(todo) == 0:
            break
        if round_ >= 8:  # a crowded length: let the stragglers take one more syllable
            n_syl[todo] = np.minimum(n_syl[todo] + 1, _MAX_SYLLABLES)
    else:  # pragma: no cover - guarded by the capacity check above
        raise KnobsimError(f"could not spell {n:,} distinct words; use fewer --words")
    # Word length tied to surprisal: the shortest words go to the most frequent ranks (ties
    # in random order), so a rarer word is never shorter than a more frequent one.
    words = words[np.argsort((words != 0).sum(axis=1) + rng.random(n), kind="stable")]
    lengths = (words != 0).sum(axis=1).astype(np.int32)
    return words[:, : lengths.max() + 1].astype(np.int32), lengths


def _favourites(rng: np.random.Generator, u: np.ndarray, k: int) -> np.ndarray:
    """(V, k) distinct favourite successors per word, none the word itself, drawn without
    replacement in proportion to u. The first k distinct values of an i.i.d. stream of draws
    have exactly that law (successive sampling), so rows draw a stream and keep its first k."""
    n = len(u)
    cdf = np.cumsum(u)
    cdf /= cdf[-1]
    succ = np.empty((n, k), np.int32)
    todo, draws = np.arange(n), 2 * k
    while len(todo):
        c = np.minimum(np.searchsorted(cdf, rng.random((len(todo), draws))), n - 1)
        order = np.argsort(c, axis=1, kind="stable")
        sorted_c = np.take_along_axis(c, order, axis=1)
        first_sorted = np.ones_like(sorted_c, bool)
        first_sorted[:, 1:] = sorted_c[:, 1:] != sorted_c[:, :-1]
        first = np.zeros_like(first_sorted)
        np.put_along_axis(first, order, first_sorted, axis=1)
        first &= c != todo[:, None]
        taken = np.cumsum(first, axis=1)
        done = taken[:, -1] >= k
        rows = np.flatnonzero(done)
        succ[todo[rows]] = c[rows][(first & (taken <= k))[rows]].reshape(-1, k)
        todo, draws = todo[~done], 2 * draws
    return succ


def _stationary(u, succ, sprob, m, tol=1e-15, max_iter=10_000) -> np.ndarray:
    """pi = (1-m) u + m pi S, by fixed-point iteration (a contraction with rate m)."""
    pi = u.copy()
    flat_succ = succ.ravel()
    for _ in range(max_iter):
        flow = np.bincount(flat_succ, weights=(pi[:, None] * sprob).ravel(), minlength=len(u))
        new = (1 - m) * u + m * flow
        new /= new.sum()
        if np.max(np.abs(new - pi)) < tol:
            return new
        pi = new
    return pi


def validate_language_config(cfg: LanguageConfig) -> None:
    if not 2 <= cfg.n_words <= MAX_WORDS:
        raise KnobsimError(
            f"--words must be between 2 and {MAX_WORDS:,} (2^20; larger lexicons' tables do not "
            f"fit comfortably in memory), got {cfg.n_words:,}")
    if not 0.0 < cfg.zipf <= 4.0:
        raise KnobsimError(f"--zipf must be in (0, 4], got {cfg.zipf}")
    if not cfg.zipf_offset >= 0.0:
        raise KnobsimError(f"--zipf-offset must be >= 0, got {cfg.zipf_offset}")
    if not 1 <= cfg.n_successors < cfg.n_words:
        raise KnobsimError(
            f"--successors must be between 1 and n_words-1={cfg.n_words - 1}, got {cfg.n_successors}"
        )
    if not 0.0 <= cfg.successor_weight < 1.0:
        raise KnobsimError(f"--successor-weight must be in [0, 1), got {cfg.successor_weight}")
    if not 1.0 <= cfg.syllables_base <= 6.0:
        raise KnobsimError(f"--syllables-base must be in [1, 6], got {cfg.syllables_base}")
    if not 0.0 <= cfg.syllables_per_decade <= 3.0:
        raise KnobsimError(f"--syllables-per-decade must be in [0, 3], got {cfg.syllables_per_decade}")


@functools.lru_cache(maxsize=8)
def build_language(cfg: LanguageConfig = LanguageConfig()) -> Language:
    """Build the language's tables deterministically from its config (~0.5 s at 2^17 words)."""
    validate_language_config(cfg)
    rng = np.random.default_rng([cfg.seed, 0x6B6E6F62])  # "knob"
    n, k, m = cfg.n_words, cfg.n_successors, cfg.successor_weight
    ranks = np.arange(1, n + 1, dtype=np.float64)
    u = (ranks + cfg.zipf_offset) ** -cfg.zipf
    u /= u.sum()
    # Favourite successors: k distinct words, drawn in proportion to frequency (frequent
    # words are everyone's favourites, as in text), with Dirichlet weights, largest first.
    succ = _favourites(rng, u, k)
    sprob = -np.sort(-rng.dirichlet(np.ones(k), size=n), axis=1)
    pi = _stationary(u, succ, sprob, m)
    # Rank by the stationary frequency: a favourite of a frequent word is frequent itself.
    order = np.argsort(-pi, kind="stable")
    new_id = np.empty(n, np.int32)
    new_id[order] = np.arange(n, dtype=np.int32)
    u, pi, sprob, succ = u[order], pi[order], sprob[order], new_id[succ[order]]
    spelling, lengths = _make_lexicon(rng, cfg)
    ascii_ = np.frombuffer(b"\0" + ALPHABET[1:].encode(), np.uint8)[spelling]  # pads -> NUL
    words = tuple(w.decode() for w in ascii_.view(f"S{spelling.shape[1]}").ravel())
    return Language(
        config=cfg,
        words=words,
        unigram=u,
        successors=succ,
        successor_probs=sprob,
        stationary=pi,
        spelling=spelling,
        lengths=lengths,
    )
