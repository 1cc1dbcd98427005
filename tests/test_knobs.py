"""Knob statistics against hand computations on a tiny pytree; dials; spectra; muP rates."""

import math

import jax
import numpy as np
import pytest

from knobsim.watch import stats as knobs

RNG = np.random.default_rng(0)
W0 = {"a": {"w": RNG.normal(size=(2, 3)).astype(np.float32)}, "b": np.zeros(4, np.float32),
      "c": np.array([1.0, -2.0, 0.0], np.float32)}
U = {"a": {"w": RNG.normal(size=(2, 3)).astype(np.float32) * 0.1},
     "b": np.array([0.5, -0.5, 0.0, 0.25], np.float32), "c": np.array([-3.0, 0.0, 0.5], np.float32)}
W = jax.tree.map(lambda a, u: (a + u).astype(np.float32), W0, U)
G = jax.tree.map(lambda u: (2.0 * u).astype(np.float32), U)


def _hand(w, w0, u, g):
    """Each statistic written out for one tensor, the slow obvious way."""
    w, w0, u, g = (np.asarray(x, np.float64).ravel() for x in (w, w0, u, g))
    n = lambda x: math.sqrt(sum(v * v for v in x))  # noqa: E731
    signed = sum(1 for v in w0 if v != 0)
    flips = sum(1 for a, b in zip(w, w0) if a * b < 0)
    return {
        "weight_norm": n(w), "drift": n(w - w0),
        "rel_drift": n(w - w0) / n(w0) if n(w0) else math.nan,
        "update_norm": n(u), "update_ratio": n(u) / n(w) if n(w) else math.nan,
        "grad_norm": n(g), "sign_flip": flips / signed if signed else math.nan,
    }


@pytest.mark.parametrize("xp", ["jax-jit", "numpy"])
def test_tensor_and_global_stats_match_hand_computation(xp):
    if xp == "numpy":
        out = knobs.watch_stats(W, W0, U, G, xp=np)
    else:
        out = jax.jit(knobs.watch_stats)(W, W0, U, G)
    names = knobs.names(W)
    assert names == ["a.w", "b", "c"]
    leaves = lambda t: jax.tree.leaves(t)  # noqa: E731
    for j, (w, w0, u, g) in enumerate(zip(leaves(W), leaves(W0), leaves(U), leaves(G))):
        want = _hand(w, w0, u, g)
        for k in knobs.STATS:
            np.testing.assert_allclose(float(out["tensor"][k][j]), want[k], rtol=1e-6, equal_nan=True,
                                       err_msg=f"{names[j]} {k}")
    cat = lambda t: np.concatenate([np.ravel(x) for x in leaves(t)])  # noqa: E731
    want = _hand(cat(W), cat(W0), cat(U), cat(G))
    for k in knobs.STATS:
        np.testing.assert_allclose(float(out["global"][k]), want[k], rtol=1e-6, err_msg=k)


def test_undefined_ratios_are_nan_not_inf():
    s = knobs.tensor_stats(W, W0, U, G, xp=np)
    j = knobs.names(W).index("b")  # zero-initialised: no relative drift, no sign to flip
    assert math.isnan(s["rel_drift"][j]) and math.isnan(s["sign_flip"][j])
    # c = [1, -2, 0] -> [-2, -2, 0.5]: one of the two signed knobs flipped; the zero is not counted
    assert s["sign_flip"][knobs.names(W).index("c")] == pytest.approx(0.5)
    s0 = knobs.tensor_stats(W0, W0, xp=np)  # step 0: no update, no gradient
    assert np.all(np.isnan(s0["update_norm"])) and np.all(np.isnan(s0["grad_norm"]))
    assert np.all(s0["drift"] == 0)


def test_dial_sample_is_seeded_sorted_and_independent_per_tensor():
    shapes = {"a": (10, 10), "b": (3,), "c": (50,)}
    s1 = knobs.sample_knobs(shapes, 8, seed=0)
    s2 = knobs.sample_knobs(shapes, 8, seed=0)
    assert all(np.array_equal(s1[k], s2[k]) for k in shapes)
    assert len(s1["b"]) == 3 and len(s1["a"]) == 8
    assert all(np.all(np.diff(v) > 0) and v.max() < np.prod(shapes[k]) for k, v in s1.items())
    more = knobs.sample_knobs({**shapes, "d": (7,)}, 8, seed=0)  # a new tensor reshuffles nothing
    assert all(np.array_equal(s1[k], more[k]) for k in shapes)
    assert not np.array_equal(knobs.sample_knobs(shapes, 8, seed=1)["a"], s1["a"])


def test_gather_knobs_reads_the_sampled_entries():
    sample = knobs.sample_knobs({n: np.shape(x) for n, x in zip(knobs.names(W), jax.tree.leaves(W))}, 2)
    got = np.asarray(jax.jit(knobs.gather_knobs, static_argnums=())(W, sample))
    tensors, index = knobs.sample_table(knobs.names(W), sample)
    flat = dict(zip(knobs.names(W), jax.tree.leaves(W)))
    want = [np.ravel(flat[t])[i] for t, i in zip(tensors, index)]
    np.testing.assert_array_equal(got, np.asarray(want, np.float32))


def test_snapshot_steps_are_powers_of_two_and_the_end():
    assert knobs.snapshot_steps(10) == [0, 1, 2, 4, 8, 10]
    assert knobs.snapshot_steps(8) == [0, 1, 2, 4, 8]
    assert knobs.snapshot_steps(1) == [0, 1]


def test_powerlaw_alpha_is_the_mle_at_the_ks_best_xmin():
    x = np.array([0.1, 0.2, 0.3, 0.5, 1.0, 1.3, 1.7, 2.5, 4.0, 7.0, 12.0, 30.0])
    fit = knobs.powerlaw_alpha(x, min_tail=5)
    tail = x[x >= fit["xmin"]]
    assert fit["n_tail"] == len(tail)
    assert fit["alpha"] == pytest.approx(1 + len(tail) / np.sum(np.log(tail / fit["xmin"])))
    # Brute force over every candidate: the chosen xmin has the smallest KS distance.
    best = np.inf
    for xmin in x[: len(x) - 4]:
        t = np.sort(x[x >= xmin])
        a = 1 + len(t) / np.sum(np.log(t / xmin))
        cdf = 1 - (t / xmin) ** (1 - a)
        d = max(np.max(np.abs(np.arange(1, len(t) + 1) / len(t) - cdf)),
                np.max(np.abs(np.arange(len(t)) / len(t) - cdf)))
        best = min(best, d)
    assert fit["ks"] == pytest.approx(best)


def test_powerlaw_alpha_recovers_a_known_tail():
    rng = np.random.default_rng(1)
    alpha, xmin = 2.5, 1.0
    tail = xmin * (1 - rng.random(4000)) ** (-1 / (alpha - 1))  # Pareto: p(x) ~ x^-alpha
    body = rng.random(2000) * xmin  # below xmin: not a power law
    fit = knobs.powerlaw_alpha(np.concatenate([body, tail]))
    assert fit["alpha"] == pytest.approx(alpha, abs=0.1)
    assert 0.8 < fit["xmin"] < 1.5
    assert math.isnan(knobs.powerlaw_alpha([1.0, 2.0])["alpha"])  # too few points: no fit


def test_spectrum_of_a_diagonal_matrix():
    w = np.diag([3.0, 1.0, 1.0, 1.0])
    s = knobs.spectrum(w)
    assert s["sigma_max"] == pytest.approx(3.0)
    assert s["stable_rank"] == pytest.approx((9 + 3) / 9)


def test_mup_scales_hidden_matrix_updates_by_base_over_width():
    """Under muP the Adam update of each hidden matrix is the SP one times base_d / d;
    everything else (embedding, biases, norms) is untouched."""
    import dataclasses

    from knobsim.core.plan import plan_run

    from knobsim.core.programs import build_programs, init_state

    from knobsim.core.state import flat_params
    from knobsim.data.language import build_language
    from knobsim.data.sampler import device_tables, words_needed

    sp = plan_run(params=3000, steps=4, batch=2, seq=16, chunk=1, check_memory=False)
    d = sp.model.shape.d_model
    mup = dataclasses.replace(sp, model=dataclasses.replace(sp.model, shape=dataclasses.replace(sp.model.shape, mup_base_d=d / 4)))
    lang = build_language(sp.language)
    tables, nw = device_tables(lang), words_needed(lang, 16)
    out = {}
    for name, cfg in (("sp", sp), ("mup", mup)):
        progs = build_programs(cfg, nw)
        s0 = init_state(cfg, progs)
        p0 = flat_params(s0.params, copy=True)
        s1, _ = progs.step(progs.step(s0, tables)[0], tables)  # step 1 has lr 0 (warmup)
        out[name] = {k: np.asarray(v) - p0[k] for k, v in flat_params(s1.params).items()}
    for k in out["sp"]:
        hidden = k.split(".")[-1].split("_")[0] == "w" and k.startswith("blocks")
        want = out["sp"][k] * (0.25 if hidden else 1.0)
        np.testing.assert_allclose(out["mup"][k], want, rtol=1e-4, atol=1e-7, err_msg=k)


@pytest.mark.slow
def test_knob_drift_experiment_runs_tiny(tmp_path, monkeypatch):
    import json

    from tiny_experiments import run_experiment_tiny

    run_experiment_tiny("knob_drift", tmp_path, monkeypatch)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["mode"] == "tiny" and set(s["slopes"]) == {"SP", "muP"}
    assert all((tmp_path / f).stat().st_size > 10_000 for f in s["figures"])
