"""experiments/isoflop.py, data_scaling.py and ideal_learner.py run end to end in --tiny
mode (see test_experiments.py; a file of their own so that the two xdist workers share the
load)."""

import json

import pytest

from tiny_experiments import check_experiment_runs_tiny


@pytest.mark.slow
@pytest.mark.parametrize("name", ["isoflop", "data_scaling"])
def test_experiment_runs_tiny_and_writes_figures_and_summary(name, tmp_path, monkeypatch):
    check_experiment_runs_tiny(name, tmp_path, monkeypatch)


def test_ideal_learner_runs_tiny_and_its_curve_ends_at_the_floor(tmp_path, monkeypatch):
    check_experiment_runs_tiny("ideal_learner", tmp_path, monkeypatch)
    s = json.loads((tmp_path / "ideal_learner-tiny" / "summary.json").read_text())
    for preset in ("scale-free", "english"):
        d = s[preset]
        assert d["curve"][0]["K"] == 0 and d["curve"][-1]["K"] == d["n_words"]
        assert d["curve"][-1]["loss"] == pytest.approx(d["floor"], rel=1e-12)
        assert all(a["loss"] > b["loss"] for a, b in zip(d["curve"], d["curve"][1:]))
    assert s["english_E_rel_error"] < -0.3  # the lesson: even the ideal learner's fit misses
