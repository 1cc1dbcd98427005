"""The fits recover the truth on points built from the ideal learner's exact curve: a model
of N knobs that knows K(N) = c N^gamma words has loss L*(K(N)) (the quantization model), so
an E-free L(N) fit of such points, with seed noise, must find the language's exact floor and
alpha = gamma x the ideal curve's own exponent (issue 22's tests)."""

import numpy as np
import pytest

from knobsim.config import LanguageConfig
from knobsim.data import ideal
from knobsim.data.language import build_language
from knobsim.scaling.fit import fit_power_law


@pytest.fixture(scope="module")
def curve():
    lang = build_language(LanguageConfig())
    ks = ideal.k_grid(len(lang.words), 32)
    return lang, ks, ideal.ideal_curve(lang, ks)


@pytest.mark.parametrize("gamma", [0.5, 0.8])
def test_e_free_fit_of_ideal_learner_points_finds_the_floor(curve, gamma):
    lang, ks, y = curve
    n = np.geomspace(3e3, 1e6, 6)  # 2.5 decades
    k = 54 * (n / 3e3) ** gamma  # 54 words at 3e3 knobs, as measured (docs/scaling.md)
    exact = np.exp(np.interp(np.log(k), np.log(ks), np.log(y)))
    rng = np.random.default_rng(1)
    x = np.repeat(n, 3)
    loss = np.repeat(exact, 3) * (1 + 0.003 * rng.standard_normal(x.size))  # 0.3% seed noise
    fit = fit_power_law(x, loss, var="n", bootstrap=10)
    floor = lang.entropy_rate
    assert abs(fit.E / floor - 1) < 0.01, (fit.E, floor)
    lo, hi = fit.ci["E"]
    assert lo - 0.002 <= floor <= hi + 0.002
    alpha_ideal = ideal.fit_ideal(lang).alpha
    assert fit.alpha == pytest.approx(gamma * alpha_ideal, rel=0.1)
    assert fit.r2 > 0.99


def test_scaling_params_maps_knobs_to_words(curve, tmp_path, monkeypatch):
    """experiments/scaling_params.py's K_eff fit recovers gamma from runs whose losses are the
    ideal learner's at K = c N^gamma, and draws real_vs_ideal.png from them."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "experiments"
    monkeypatch.syspath_prepend(str(root))
    import scaling_params as sp

    lang, ks, y = curve
    n = np.geomspace(3e3, 3e5, 5)
    k = 2.0 * n ** 0.45
    loss = np.exp(np.interp(np.log(k), np.log(ks), np.log(y)))
    rows = [{"n_params_total": int(a), "final_eval_loss": float(b), "seed": s}
            for a, b in zip(n, loss) for s in range(2)]
    fit = sp.knowledge_fit(rows, boot=50, language=LanguageConfig())
    assert fit["gamma"] == pytest.approx(0.45, abs=0.02) and fit["c"] == pytest.approx(2.0, rel=0.15)
    png = sp.figure_knowledge(rows, fit, lang.entropy_rate, tmp_path, "test", LanguageConfig())
    assert png.name == "real_vs_ideal.png" and png.stat().st_size > 20_000
    assert sp.knowledge_fit(rows[:2], boot=5, language=LanguageConfig()) is None  # one size cannot give a slope
