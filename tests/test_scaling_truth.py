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
