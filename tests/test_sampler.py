import jax
import jax.numpy as jnp
import numpy as np
import pytest

from knobsim.config import LanguageConfig
from knobsim.data.language import build_language
from knobsim.data.sampler import alias_table, decode, device_tables, encode, sample_batch, words_needed


@pytest.fixture(scope="module")
def setup():
    lang = build_language(LanguageConfig())
    return lang, device_tables(lang), words_needed(lang, 64)


def _sample(setup, key, batch=8, seq=64):
    lang, tables, nw = setup
    return np.asarray(jax.jit(sample_batch, static_argnums=(2, 3, 4))(tables, key, batch, seq, nw))


def test_same_key_same_bits_other_key_other_text(setup):
    a = _sample(setup, jax.random.key(7))
    b = _sample(setup, jax.random.key(7))
    c = _sample(setup, jax.random.key(8))
    assert a.shape == (8, 65) and a.dtype == np.int32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_eval_stream_is_separate_from_training(setup):
    from knobsim.core.plan import plan_run
    from knobsim.core.programs import EVAL_BATCH, eval_tokens
    from knobsim.core.state import seed_keys
    cfg = plan_run(params=2000, steps=1, batch=8, seq=64, check_memory=False)
    lang, tables, nw = setup
    ev = np.asarray(eval_tokens(cfg, tables, nw))
    assert ev.shape[1:] == (EVAL_BATCH, 65)
    for seed in (0, 1):
        train = _sample(setup, jax.random.fold_in(seed_keys(seed)["data"], 0))
        assert not any(np.array_equal(train[0], e) for e in ev.reshape(-1, 65))
    # The eval set belongs to the language, not to the training seed.
    other = plan_run(params=2000, steps=1, batch=4, seq=64, seed=7, check_memory=False)
    assert np.array_equal(ev, np.asarray(eval_tokens(other, tables, nw)))


def test_rows_are_lexicon_words_separated_by_spaces(setup):
    lang = setup[0]
    lexicon = set(lang.words)
    for row in _sample(setup, jax.random.key(1)):
        text = decode(row)
        assert "  " not in text and not text.startswith(" ")
        words = text.split(" ")
        assert all(w in lexicon for w in words[:-1])  # the last may be cut off


def test_alias_table_is_exact():
    p = np.array([0.5, 0.2, 0.2, 0.05, 0.05])
    prob, alias = alias_table(p)
    n = len(p)
    rebuilt = prob / n
    np.add.at(rebuilt, alias, (1 - prob) / n)
    np.testing.assert_allclose(rebuilt, p, atol=1e-7)


def test_a_languages_host_tables_are_built_once(monkeypatch):
    """Every run of a sweep asks for the same language's tables: Vose's loop (Python over
    every word) runs once per language, and the tables are the same values every time."""
    from knobsim.data import sampler

    built = []
    monkeypatch.setattr(sampler, "alias_table", lambda p: built.append(len(p)) or alias_table(p))
    sampler._host_tables.cache_clear()
    lang = build_language(LanguageConfig(n_words=3000))
    first, again = device_tables(lang), device_tables(lang)
    assert built == [3000, 3000]  # stationary and unigram, once
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again)):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    device_tables(build_language(LanguageConfig(n_words=2000)))  # another language: its own
    assert built == [3000, 3000, 2000, 2000]


def test_word_frequencies_follow_the_stationary_distribution(setup):
    lang, tables, _ = setup
    from knobsim.data.sampler import sample_words
    words = np.asarray(sample_words(tables, jax.random.key(3), 8192, 32)).ravel()
    freq = np.bincount(words, minlength=len(lang.words)) / words.size
    top = np.argsort(-lang.stationary)[:5]
    np.testing.assert_allclose(freq[top], lang.stationary[top], rtol=0.05)


def test_encode_decode_round_trip():
    assert decode(encode("la fo ep")) == "la fo ep"
    assert decode(jnp.array([0, 1, 2])) == " ab"
