"""A synthetic language that reads like text and whose entropy rate is known exactly.

Construction (see DESIGN.md):
  * an alphabet of 26 letters plus the space: 27 tokens, one per character;
  * a lexicon of ``n_words`` pronounceable words built from syllables; frequent words are
    short (Zipf's law of abbreviation), so spelling frequent words is cheap and rare
    words cost knobs;
  * word frequencies follow the Zipf-Mandelbrot law, u_r ∝ (r + q)^-zipf (q = 2.7 as
    Mandelbrot fitted for English: the tail is Zipfian, the head less dominated by 'the');
  * the word sequence is a Markov chain: each word has ``n_successors`` favourite
    successors. With probability ``successor_weight`` the next word is drawn from them,
    otherwise from the unigram: P[i, j] = (1 - m) u_j + m S[i, j];
  * text = words joined by single spaces; tokens = characters.

Because spaces delimit words, the text determines the word sequence, so the entropy rate
per character is exactly H_word / E_pi[len(w) + 1]: the word chain's entropy rate divided
by the mean characters per word (space included), both exact sums over the stationary
distribution pi. Everything here is numpy on the host and done once per language.
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
    def char_frequencies(self) -> np.ndarray:
        """(27,) stationary character frequencies."""
        counts = np.zeros((len(self.words), VOCAB))
        for i, w in enumerate(self.words):
            for c in w:
                counts[i, ALPHABET.index(c)] += 1
            counts[i, 0] += 1  # the space after the word
        return (self.stationary @ counts) / self.mean_chars_per_word

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
        pairs = np.zeros((VOCAB, VOCAB))
        for i, w in enumerate(self.words):
            ids = [0] + [ALPHABET.index(c) for c in w] + [0]
            for a, b in zip(ids[:-1], ids[1:]):
                pairs[a, b] += self.stationary[i]
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
            "mean_chars_per_word": self.mean_chars_per_word,
            "word_entropy_rate": self.word_entropy_rate,
            "entropy_floor": self.entropy_rate,
            "unigram_loss": self.unigram_loss,
            "bigram_loss": self.bigram_loss,
            "uniform_loss": float(np.log(VOCAB)),
            "language_seed": self.config.seed,
        }


def _make_lexicon(rng: np.random.Generator, n: int) -> list[str]:
    """n distinct pronounceable words, shortest first (to be given to the frequent ranks)."""
    cons_p = _CONS_W / _CONS_W.sum()
    vow_p = _VOW_W / _VOW_W.sum()

    def syllable() -> str:
        s = _CONSONANTS[rng.choice(len(_CONSONANTS), p=cons_p)] if rng.random() < 0.85 else ""
        s += _VOWELS[rng.choice(5, p=vow_p)]
        if rng.random() < 0.3:
            s += _CONSONANTS[rng.choice(len(_CONSONANTS), p=cons_p)]
        return s

    words: list[str] = []
    seen: set[str] = set()
    tries = 0
    while len(words) < n:
        r = len(words) + 1
        # Frequent ranks get fewer syllables; rare ones up to five.
        mean_syl = 1.8 + 0.4 * np.log10(r + 1)
        n_syl = int(np.clip(rng.poisson(mean_syl - 1.0) + 1, 1, 6))
        w = "".join(syllable() for _ in range(n_syl))
        tries += 1
        if len(w) < 2 or w in seen:
            continue
        seen.add(w)
        words.append(w)
        if tries > 200 * n:  # pragma: no cover - only with absurd n
            raise KnobsimError(f"could not build {n} distinct words; use fewer --words")
    # Zipf's law of abbreviation: sort by length with a little noise, shortest = most frequent.
    key = np.array([len(w) for w in words]) + rng.uniform(-3.0, 3.0, size=n)
    return [words[i] for i in np.argsort(key, kind="stable")]


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
    if not 2 <= cfg.n_words <= 200_000:
        raise KnobsimError(f"--words must be between 2 and 200000, got {cfg.n_words}")
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


@functools.lru_cache(maxsize=8)
def build_language(cfg: LanguageConfig = LanguageConfig()) -> Language:
    """Build the language's tables deterministically from its config (about 0.1 s)."""
    validate_language_config(cfg)
    rng = np.random.default_rng([cfg.seed, 0x6B6E6F62])  # "knob"
    n, k, m = cfg.n_words, cfg.n_successors, cfg.successor_weight
    words = _make_lexicon(rng, n)
    ranks = np.arange(1, n + 1, dtype=np.float64)
    u = (ranks + cfg.zipf_offset) ** -cfg.zipf
    u /= u.sum()
    # Favourite successors: k distinct words, drawn in proportion to frequency (frequent
    # words are everyone's favourites, as in text), with Dirichlet weights, largest first.
    succ = np.empty((n, k), dtype=np.int32)
    sprob = np.empty((n, k), dtype=np.float64)
    for i in range(n):
        p_i = u.copy()
        p_i[i] = 0.0  # no word is its own favourite ("the the the" reads badly)
        succ[i] = rng.choice(n, size=k, replace=False, p=p_i / p_i.sum())
        w = np.sort(rng.dirichlet(np.ones(k)))[::-1]
        sprob[i] = w
    pi = _stationary(u, succ, sprob, m)
    lengths = np.array([len(w) for w in words], dtype=np.int32)
    spelling = np.zeros((n, lengths.max() + 1), dtype=np.int32)  # 0 = space pads
    for i, w in enumerate(words):
        spelling[i, : len(w)] = [ALPHABET.index(c) for c in w]
    return Language(
        config=cfg,
        words=tuple(words),
        unigram=u,
        successors=succ,
        successor_probs=sprob,
        stationary=pi,
        spelling=spelling,
        lengths=lengths,
    )
