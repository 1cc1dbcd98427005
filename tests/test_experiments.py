"""Every experiment script runs end to end in its hidden --tiny mode (a few tiny runs) and
writes its PNGs and summary.json. The numbers a tiny run produces mean nothing; what is
tested is that the script, its sweep, its fits and its figures fit together.

This file: scaling_params, the two scripts that reuse its sweep (learning_curves,
explosion), and zipf_exponent, whose tiny runs have scaling_params' shapes and step counts
(after it, its programs are already compiled in this process). isoflop and
data_scaling are in test_experiments_isoflop_data.py, so that the two xdist workers share
the load; tiny_experiments.py holds the common check."""

import re

import pytest

from tiny_experiments import EXPERIMENTS, ROOT, check_experiment_runs_tiny


@pytest.fixture(scope="module")
def outdir(tmp_path_factory):
    # One folder for all: learning_curves and explosion reuse scaling_params' tiny sweep
    # beside their own --out, as they do in experiments/out.
    return tmp_path_factory.mktemp("experiments")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["scaling_params", "learning_curves", "explosion", "zipf_exponent"])
def test_experiment_runs_tiny_and_writes_figures_and_summary(name, outdir, monkeypatch):
    check_experiment_runs_tiny(name, outdir, monkeypatch)


def test_every_experiment_documents_quick_and_full():
    for name in EXPERIMENTS:
        doc = (ROOT / "experiments" / f"{name}.py").read_text()
        assert re.search(rf"python experiments/{name}\.py --quick +# .*\d", doc), name  # with a runtime
        assert re.search(rf"python experiments/{name}\.py +# .*\d", doc), name  # the full mode
    readme = (ROOT / "experiments" / "README.md").read_text()
    for name in EXPERIMENTS:
        assert f"{name}.py" in readme, name


@pytest.mark.slow
def test_zipf_exponent_composes_words_known_with_the_ideal_exponent(monkeypatch, tmp_path):
    """zipf_exponent's analysis on runs whose losses are the ideal learner's at K = c N^gamma
    (0.3% seed noise): it recovers gamma, and the measured alpha_N (E fixed at the floor) is
    gamma x the ideal learner's alpha, as the quantization model says; both figures draw."""
    import numpy as np

    from knobsim.config import LanguageConfig
    from knobsim.data import ideal
    from knobsim.data.language import build_language

    monkeypatch.syspath_prepend(str(ROOT / "experiments"))
    import zipf_exponent as ze

    z, gamma = 2.0, 0.5
    lang = build_language(LanguageConfig(zipf=z))
    n = np.geomspace(3e3, 3e5, 5)
    k = np.round(0.5 * n ** gamma).astype(int)  # 27..274 words
    exact = ideal.ideal_curve(lang, k)
    rng = np.random.default_rng(0)
    rows = [{"n_params_total": int(a), "final_eval_loss": float(b * (1 + 0.003 * rng.standard_normal())),
             "seed": s, "entropy_floor": lang.entropy_rate, "tokens": 10**8}
            for a, b in zip(n, exact) for s in range(2)]
    p = ze.analyse(z, rows, boot=20, boot_free=0)
    assert p["kfit"]["gamma"] == pytest.approx(gamma, abs=0.03)
    lo, hi = p["kfit"]["gamma_ci"]
    assert lo < gamma < hi
    assert p["k_size"] == pytest.approx(k, rel=0.25)  # seed noise moves K_eff
    assert p["ideal"].alpha == pytest.approx(ideal.fit_ideal(lang).alpha)
    assert p["pred"] == pytest.approx(p["kfit"]["gamma"] * p["ideal"].alpha)
    assert p["fixed"].alpha == pytest.approx(p["pred"], rel=0.1)
    row = ze.summary_row(p)
    assert row["gamma"] == p["kfit"]["gamma"] and len(row["per_size"]) == 5
    for png in (ze.figure_alpha([p], tmp_path), ze.figure_knowledge([p], tmp_path)):
        assert png.stat().st_size > 20_000
