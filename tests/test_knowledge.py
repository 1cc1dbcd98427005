"""Which words a model knows: K_eff and the per-rank table, checked on a learner whose code
lengths are known (the ideal learner itself), and end to end through `knobsim watch`."""

import json

import numpy as np
import pytest

from knobsim.config import LanguageConfig
from knobsim.core.knowledge import knowledge
from knobsim.data import ideal
from knobsim.data.language import build_language


def _occurrences(lang, n, seed=0):
    """Word pairs of the stationary chain (prev from pi, next from P(. | prev))."""
    rng = np.random.default_rng(seed)
    prev = rng.choice(len(lang.words), size=n, p=lang.stationary)
    m = lang.config.successor_weight
    fav = rng.random(n) < m
    slot = (rng.random(n)[:, None] > np.cumsum(lang.successor_probs[prev], axis=1)).sum(axis=1)
    slot = np.minimum(slot, lang.successors.shape[1] - 1)
    uni = np.minimum(np.searchsorted(np.cumsum(lang.unigram), rng.random(n)), len(lang.words) - 1)
    nxt = np.where(fav, lang.successors[prev, slot], uni)
    return prev, nxt


def test_an_ideal_learner_of_k_words_is_measured_as_knowing_k():
    lang = build_language(LanguageConfig(n_words=5000))
    prev, nxt = _occurrences(lang, 200_000)
    for k in (20, 300):
        nats = ideal.code_lengths(lang, ideal.coder(lang, k), prev, nxt)
        out = knowledge(lang, prev, nxt, nats)
        assert out["k_eff"] == pytest.approx(k, rel=0.05), out["k_eff"]
        known = [b for b in out["bins"] if b["rank_hi"] <= k // 2 and b["occurrences"] > 100]
        unknown = [b for b in out["bins"] if b["rank_lo"] > 2 * k and b["occurrences"] > 100]
        assert known and unknown
        for b in known:  # it pays the known cost on words it knows (more only after an
            assert 0 <= b["excess_nats"] < 0.1  # unknown previous word)
        for b in unknown:  # and the unknown cost (at K_eff ~ k) on the others
            assert b["model_nats"] == pytest.approx(b["unknown_nats"], rel=0.02)
            assert b["excess_nats"] > 5


def test_k_eff_ends():
    lang = build_language(LanguageConfig(n_words=2000))
    prev, nxt = _occurrences(lang, 20_000)
    exact = -lang.transition_logprob(prev, nxt)
    assert knowledge(lang, prev, nxt, exact)["k_eff"] == len(lang.words)  # knows every word
    assert knowledge(lang, prev, nxt, exact + 100.0)["k_eff"] == 0.0  # worse than a letter model


@pytest.mark.slow
def test_watch_writes_knowledge_and_its_figure(tmp_path, cli):
    run = tmp_path / "run"
    r = cli("train", "--params", "3e3", "--steps", "60", "--chunk", "20", "--out", run, "-q")
    assert r.returncode == 0, r.stderr
    r = cli("watch", run, "--no-gif")
    assert r.returncode == 0, r.stderr
    k = json.loads((run / "knowledge.json").read_text())
    assert set(k) >= {"k_eff", "bins", "occurrences", "model_nats_per_char", "entropy_floor", "eval_loss"}
    assert 0 <= k["k_eff"] < 1000 and k["occurrences"] > 100_000
    assert k["bins"][0]["rank_lo"] == 1 and all(b["occurrences"] > 0 for b in k["bins"])
    png = run / "figures" / "knowledge.png"
    assert png.stat().st_size > 20_000
    assert "knows ~" in r.stdout
    # A second watch reuses the measurement (same final weights): the file is not rewritten.
    before = (run / "knowledge.json").stat().st_mtime_ns
    assert cli("watch", run, "--no-gif").returncode == 0
    assert (run / "knowledge.json").stat().st_mtime_ns == before
