"""The ideal learner: its closed-form L*(K) against its definition, Monte Carlo and its ends;
the default language scale-free, the English-like preset not."""

import dataclasses
import json

import numpy as np
import pytest

from knobsim.config import PRESETS, LanguageConfig
from knobsim.data import ideal
from knobsim.data.language import build_language

TINY = LanguageConfig(seed=3, n_words=60, n_successors=3, successor_weight=0.5)


@pytest.fixture(scope="module")
def tiny():
    return build_language(TINY)


def _dense_word_loss(lang, k):
    """sum_i pi_i sum_j P(j|i) * code_length(i, j): every pair, straight from the definition."""
    n = len(lang.words)
    prev, nxt = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    p = np.exp(lang.transition_logprob(prev, nxt))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    bits = ideal.code_lengths(lang, ideal.coder(lang, k), prev, nxt)
    return float(np.sum(lang.stationary[:, None] * p * bits))


@pytest.mark.parametrize("k", [0, 1, 7, 30, 59, 60])
def test_closed_form_equals_the_sum_over_every_word_pair(tiny, k):
    assert ideal.ideal_word_loss(tiny, k) == pytest.approx(_dense_word_loss(tiny, k), rel=1e-10)


def test_ends_of_the_curve(tiny):
    """K = V knows everything: the floor, exactly. K = 0 is a letter model: the unigram loss."""
    assert ideal.ideal_loss(tiny, len(tiny.words)) == pytest.approx(tiny.entropy_rate, rel=1e-12)
    assert ideal.ideal_loss(tiny, 0) == pytest.approx(tiny.unigram_loss, rel=1e-12)
    default = build_language(LanguageConfig())
    assert ideal.ideal_loss(default, len(default.words)) == pytest.approx(default.entropy_rate, rel=1e-12)
    assert ideal.ideal_loss(default, 0) == pytest.approx(default.unigram_loss, rel=1e-12)


def _sample_chain(lang, rng, rows, words):
    """(rows, words) word ids of the stationary chain, sampled on the host from its tables."""
    n, m = len(lang.words), lang.config.successor_weight
    out = np.empty((rows, words), np.int64)
    out[:, 0] = rng.choice(n, size=rows, p=lang.stationary)
    cdf_u = np.cumsum(lang.unigram)
    for t in range(1, words):
        prev = out[:, t - 1]
        fav = rng.random(rows) < m
        slot = np.array([rng.choice(lang.successors.shape[1], p=lang.successor_probs[i]) for i in prev])
        uni = np.minimum(np.searchsorted(cdf_u, rng.random(rows) * cdf_u[-1]), n - 1)
        out[:, t] = np.where(fav, lang.successors[prev, slot], uni)
    return out


@pytest.mark.parametrize("k", [0, 5, 20])
def test_monte_carlo_code_length_matches_within_its_standard_error(tiny, k):
    """The ideal learner's code length on sampled text, per character, averaged over
    independent rows: within 4 standard errors of the exact L*(K)."""
    ids = _sample_chain(tiny, np.random.default_rng(k), rows=300, words=120)
    bits = ideal.code_lengths(tiny, ideal.coder(tiny, k), ids[:, :-1], ids[:, 1:])
    chars = tiny.lengths[ids[:, 1:]] + 1
    per_row = bits.sum(axis=1) / chars.sum(axis=1)
    mc, se = per_row.mean(), per_row.std(ddof=1) / np.sqrt(len(per_row))
    exact = ideal.ideal_loss(tiny, k)
    assert abs(mc - exact) < 4 * se, (mc, exact, se)
    assert se < 0.02 * exact  # the test has power: the band is narrow


def test_curve_falls_with_k_and_k_effective_inverts_it():
    lang = build_language(LanguageConfig())
    ks = ideal.k_grid(len(lang.words), 4)
    y = ideal.ideal_curve(lang, ks)
    assert np.all(np.diff(y) < 0)
    for k in (12, 150, 2000):
        assert ideal.k_effective(lang, ideal.ideal_loss(lang, k)) == pytest.approx(k, rel=0.02)
    assert ideal.k_effective(lang, 10.0) == 0.0
    assert ideal.k_effective(lang, lang.entropy_rate * 0.5) == len(lang.words)


def test_default_language_is_scale_free():
    """Issue 21's bar: the E-free fit over K in [10, 3000] within 1% of the floor, the local
    log-log slope of L*(K) - floor within 20% of its mean over that range."""
    fit = ideal.fit_ideal(build_language(LanguageConfig()))
    assert (fit.k_min, fit.k_max) == (10, 3000)
    assert abs(fit.rel_error) < 0.01, fit
    assert fit.slope_spread < 0.20, fit
    assert 0.7 < fit.alpha < 1.2, fit  # ~ zipf - 1: the tail mass beyond K


def test_english_preset_is_not_scale_free():
    """The lesson kept: on the old English-like language a perfect learner's fit misses."""
    fit = ideal.fit_ideal(build_language(PRESETS["english"]))
    assert fit.rel_error < -0.3, fit
    assert fit.slope_spread > 0.5, fit


def test_learnable_rank_counts_words_seen_thirty_times():
    lang = build_language(LanguageConfig())
    r = [ideal.learnable_rank(lang, d) for d in (1e6, 1e7, 1e8)]
    assert r[0] < r[1] < r[2]
    # Zipf 2: ten times the text, about sqrt(10) times the words.
    assert 2.5 < r[1] / r[0] < 3.8 and 2.5 < r[2] / r[1] < 3.8
    seen = 1e7 * lang.stationary / lang.mean_chars_per_word
    assert seen[r[1] - 1] >= 30 > seen[r[1]]


def test_lexicon_is_distinct_and_longer_with_rank():
    lang = build_language(LanguageConfig())
    assert len(set(lang.words)) == len(lang.words) == 131_072
    assert np.all(np.diff(lang.lengths) >= 0)  # a rarer word is never shorter
    assert np.all(np.diff(lang.stationary) <= 0)  # ranked by stationary frequency
    assert lang.min_len >= 2
    decade = [lang.lengths[10 ** d - 1: 10 ** (d + 1)].mean() for d in range(5)]
    assert np.all(np.diff(decade) > 1.5)  # ~1.2 syllables (~2.6 letters) per decade


def test_old_config_json_reads_as_the_english_lexicon():
    old = dataclasses.asdict(PRESETS["english"])
    del old["syllables_base"], old["syllables_per_decade"]
    assert LanguageConfig.from_dict(old) == PRESETS["english"]


def test_data_ideal_cli_json(cli):
    res = cli("data", "--ideal", "--json", "--words", "3000", "--chars", "50")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out) >= {"entropy_floor", "ideal", "ideal_fit", "learnable_rank", "sample"}
    ks = [r["K"] for r in out["ideal"]]
    assert ks[0] == 0 and ks[-1] == 3000
    assert out["ideal"][-1]["loss"] == pytest.approx(out["entropy_floor"], rel=1e-12)
    assert set(out["ideal_fit"]) >= {"E", "alpha", "k_min", "k_max"}


@pytest.mark.parametrize("words", [5, 60])
def test_data_ideal_on_a_tiny_lexicon_prints_the_curve_and_says_there_is_no_fit(cli, words):
    res = cli("data", "--ideal", "--words", words, "--chars", "20")
    assert res.returncode == 0, res.stderr
    assert "no fit" in res.stdout and "Traceback" not in res.stderr
    out = json.loads(cli("data", "--ideal", "--json", "--words", words, "--chars", "5").stdout)
    assert out["ideal_fit"] is None and out["ideal"][-1]["K"] == words


def test_data_ideal_cli_says_when_the_fit_misses(cli):
    res = cli("data", "--ideal", "--preset", "english", "--chars", "20")
    assert res.returncode == 0, res.stderr
    out = " ".join(res.stdout.split())
    assert "not scale-free" in out and "below the exact" in out


@pytest.mark.parametrize("args, says", [
    (["--words", "100000", "--syllables-per-decade", "0"], "cannot be spelled"),
    (["--words", "5000000"], "--words must be between 2 and 1,048,576"),
])
def test_impossible_language_is_one_line_exit_2(args, says, cli):
    res = cli("data", *args)
    assert res.returncode == 2, res.stderr
    assert says in res.stderr and not res.stdout
    assert len(res.stderr.strip().splitlines()) == 1
