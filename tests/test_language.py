"""The language's exact facts, checked against Monte Carlo and against their definitions."""

import jax
import numpy as np
import pytest

from knobsim.config import LanguageConfig
from knobsim.data.language import ALPHABET, build_language
from knobsim.data.sampler import decode, device_tables, sample_batch, words_needed


@pytest.fixture(scope="module")
def lang():
    return build_language(LanguageConfig())


def test_stationary_is_a_fixed_point():
    lang = build_language(LanguageConfig(n_words=2000))  # dense (V, V) matrices below
    m = lang.config.successor_weight
    n = len(lang.words)
    # Dense transition matrix, built by hand from the definition P = (1-m) 1 u^T + m S.
    s = np.zeros((n, n))
    np.add.at(s, (np.repeat(np.arange(n), lang.successors.shape[1]), lang.successors.ravel()),
              lang.successor_probs.ravel())
    p = (1 - m) * lang.unigram[None, :] + m * s
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(lang.stationary @ p, lang.stationary, atol=1e-14)
    # And the closed-form entropy rate equals the dense sum over rows.
    dense_h = -np.sum(lang.stationary[:, None] * np.where(p > 0, p * np.log(p), 0.0))
    assert lang.word_entropy_rate == pytest.approx(dense_h, rel=1e-12)


def test_entropy_rate_matches_monte_carlo_within_one_percent(lang):
    """Sample text on the device, read the words back, average -log P(w_t | w_{t-1}) per char."""
    tables = device_tables(lang)
    seq = 2047
    tokens = jax.jit(sample_batch, static_argnums=(2, 3, 4))(
        tables, jax.random.key(123), 96, seq, words_needed(lang, seq))
    index = {w: i for i, w in enumerate(lang.words)}
    nll, chars = 0.0, 0
    for row in np.asarray(tokens):
        words = decode(row).split(" ")[:-1]  # the last word may be cut by the window
        ids = np.array([index[w] for w in words])
        nll += -lang.transition_logprob(ids[:-1], ids[1:]).sum()
        chars += sum(len(w) + 1 for w in words[1:])
    mc = nll / chars
    assert mc == pytest.approx(lang.entropy_rate, rel=0.01), (mc, lang.entropy_rate)


def test_baselines_are_ordered(lang):
    f = lang.facts()
    assert f["entropy_floor"] < f["bigram_loss"] < f["unigram_loss"] < f["uniform_loss"]
    assert f["vocab_size"] == len(ALPHABET) == 27
    assert lang.char_frequencies.sum() == pytest.approx(1.0)


def test_language_is_deterministic_and_seeded():
    a = build_language(LanguageConfig(seed=1, n_words=300))
    b = build_language.__wrapped__(LanguageConfig(seed=1, n_words=300))  # bypass the cache
    c = build_language(LanguageConfig(seed=2, n_words=300))
    assert a.words == b.words and np.array_equal(a.successors, b.successors)
    assert a.words != c.words


def test_zipf_exponent_changes_the_floor():
    flat = build_language(LanguageConfig(n_words=500, zipf=0.8))
    steep = build_language(LanguageConfig(n_words=500, zipf=2.0))
    assert steep.word_entropy_rate < flat.word_entropy_rate
    assert steep.stationary[0] > flat.stationary[0]
    assert len(set(flat.words)) == 500
