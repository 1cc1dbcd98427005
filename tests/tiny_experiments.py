"""Shared by the test_experiments*.py files: each experiment script in its hidden --tiny
mode, and what its figure and summary.json must show. The experiments are split over
several test files only so that `pytest -n 2 --dist loadfile` can run them on both workers.

The numbers of a tiny run mean nothing, so the checks are about the plumbing, not the
science: the figure is the one drawn (its axes named as the script names them, data drawn
on them), every number in the summary is finite, and the summary agrees with the results
table of the runs it was made from."""

import csv
import json
import math
import runpy
import sys
from pathlib import Path

import matplotlib
import matplotlib.figure
import matplotlib.pyplot
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

EXPERIMENTS = {
    "scaling_params": ("scaling_params.png", ("alpha", "alpha_ci", "r2", "E_fit", "entropy_floor",
                                              "n_min", "n_max", "alpha_floor_fixed")),
    "learning_curves": ("learning_curves.png", ("beta_frontier", "frontier", "entropy_floor")),
    "explosion": ("explosion.png", ("alpha", "E_fit", "extrapolations", "warning")),
    "data_scaling": ("data_scaling.png", ("results", "unlimited", "pools")),
    "zipf_exponent": ("zipf_exponent.png", ("per_zipf", "d_alpha_d_zipf", "d_alpha_ideal_d_zipf",
                                            "k_eff_min")),
    "isoflop": ("isoflop.png", ("a_approach2", "a_approach2_ci", "a_approach3", "per_budget")),
    "ideal_learner": ("ideal_learner.png", ("E_rel_error", "alpha", "slope_spread", "entropy_floor",
                                            "english_E_rel_error", "scale-free", "english")),
}

# Words each figure's axis labels must hold (case-insensitive): what its axes show.
LABELS = {
    "scaling_params": ("parameters N", "eval loss", "eval loss − entropy floor"),
    "learning_curves": ("training compute", "loss on fresh text", "N of the best run"),
    "explosion": ("parameters N", "eval loss"),
    "data_scaling": ("tokens seen", "unique tokens", "eval loss"),
    "zipf_exponent": ("parameters N", "Zipf exponent", "scaling exponent"),
    "isoflop": ("parameters N", "final eval loss", "compute-optimal N"),
    "ideal_learner": ("words the ideal learner knows", "L*(K)", "− floor"),
}


def run_experiment_tiny(name, out, monkeypatch, args=()) -> dict:
    """`python experiments/<name>.py --tiny -q --out OUT`, run as __main__ in this process.
    Returns {file name: Figure} of the figures it saved.

    In-process rather than a subprocess: a Python + JAX + matplotlib start is 3-4 s per
    script, and programs another test already compiled here are reused. The script's own
    path (argv, argparse, its `if __name__ == "__main__"`) is what runs; an exception fails
    the test with its traceback."""
    script = ROOT / "experiments" / f"{name}.py"
    monkeypatch.syspath_prepend(str(script.parent))  # as `python script.py` puts it first
    monkeypatch.setattr(sys, "argv", [str(script), "--tiny", "-q", "--out", str(out), *args])
    monkeypatch.chdir(ROOT)
    matplotlib.use("Agg")
    saved, savefig = {}, matplotlib.figure.Figure.savefig

    def recording_savefig(fig, fname, *args, **kw):
        saved[Path(str(fname)).name] = fig
        return savefig(fig, fname, *args, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", recording_savefig)
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        matplotlib.pyplot.close("all")
    return saved


def check_experiment_runs_tiny(name, outdir, monkeypatch):
    """Run experiments/<name>.py --tiny into outdir/<name>-tiny; check its figure and summary."""
    out = outdir / f"{name}-tiny"  # the default names: learning_curves finds scaling_params-tiny
    figures = run_experiment_tiny(name, out, monkeypatch)
    png, keys = EXPERIMENTS[name]
    assert (out / png).stat().st_size > 10_000
    s = json.loads((out / "summary.json").read_text())
    assert s["mode"] == "tiny" and png in s["figures"]
    for k in keys:
        assert k in s, k
    check_figure(figures.get(png), LABELS[name])
    assert not non_finite(s), f"non-finite numbers in summary.json: {non_finite(s)}"
    CONSISTENT[name](s, out)


def check_figure(fig, labels):
    """The saved figure: its axes are named as expected, and data is drawn on them."""
    assert fig is not None, "the figure was not saved through matplotlib"
    names = " | ".join(f"{ax.get_xlabel()} | {ax.get_ylabel()}" for ax in fig.axes).lower()
    for want in labels:
        assert want.lower() in names, f"no axis labelled {want!r}: {names}"
    # Points in data coordinates: lines and markers, not reference lines (axhline, axvline:
    # drawn in axes coordinates) nor bands (fill_between).
    finite_points = 0
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_transform() != ax.transData:
                continue
            x, y = (np.asarray(v, float) for v in line.get_data())
            if x.size == y.size:
                finite_points += int(np.sum(np.isfinite(x) & np.isfinite(y)))
        for coll in ax.collections:
            if coll.get_offset_transform() != ax.transData:
                continue
            off = np.asarray(coll.get_offsets(), float)
            finite_points += int(np.sum(np.all(np.isfinite(off), axis=-1))) if off.ndim == 2 else 0
    assert finite_points >= 2, "no data is drawn on the figure's axes"


def non_finite(obj, path="") -> list[str]:
    """Paths of the NaN or infinite numbers in a parsed JSON value (None is allowed: 'not
    measured')."""
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in non_finite(v, f"{path}.{k}")]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in non_finite(v, f"{path}[{i}]")]
    return [path] if isinstance(obj, float) and not math.isfinite(obj) else []


def results(sweep: Path) -> list[dict]:
    """A sweep's results.csv, numbers as numbers (read here, not through the library)."""
    def num(v):
        try:
            return float(v) if v.strip() else None
        except ValueError:
            return v

    with open(sweep / "results.csv", newline="") as f:
        return [{k: num(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _number(x):
    assert isinstance(x, (int, float)) and math.isfinite(x), x
    return x


def _by_size(rows):
    out = {}
    for r in rows:
        out.setdefault(int(r["n_params_total"]), []).append(r["final_eval_loss"])
    return out


def _scaling_params(s, out):
    rows = results(out / "sweep")
    per = _by_size(rows)
    assert (s["n_min"], s["n_max"]) == (min(per), max(per))
    assert s["entropy_floor"] == pytest.approx(rows[0]["entropy_floor"], rel=1e-12)
    assert s["seeds"] == sorted({int(r["seed"]) for r in rows})
    assert [p["n_params"] for p in s["per_size"]] == sorted(per)
    for p in s["per_size"]:
        assert p["loss_mean"] == pytest.approx(np.mean(per[p["n_params"]]), rel=1e-9)
        assert p["seeds"] == len(per[p["n_params"]])
    for k in ("alpha", "r2", "E_fit", "alpha_floor_fixed"):
        _number(s[k])


def _learning_curves(s, out):
    rows = results(out.parent / "scaling_params-tiny" / "sweep")
    assert s["sizes"] == sorted({int(r["n_params_total"]) for r in rows})
    assert s["entropy_floor"] == pytest.approx(rows[0]["entropy_floor"], rel=1e-12)
    assert s["frontier"], "an empty frontier"
    lo, hi = s["compute_range_fitted"]
    for p in s["frontier"]:
        assert p["n_params"] in s["sizes"] and lo <= p["C"] <= hi
        assert p["loss"] > 0
    _number(s["beta_frontier"])


def _explosion(s, out):
    rows = results(out.parent / "scaling_params-tiny" / "sweep")
    n = [r["n_params_total"] for r in rows]
    assert (s["n_min_trained"], s["n_max_trained"]) == (min(n), max(n))
    assert s["entropy_floor"] == pytest.approx(rows[0]["entropy_floor"], rel=1e-12)
    assert s["extrapolations"]
    for e in s["extrapolations"]:
        assert e["decades_past_largest_run"] == pytest.approx(math.log10(e["n_params"] / max(n)))
        _number(e["law_loss"])
    for k in ("alpha", "E_fit", "r2"):
        _number(s[k])


def _data_scaling(s, out):
    rows = results(out / "sweep")
    fresh = [r for r in rows if not r["pool_tokens"]]
    assert s["pools"] == sorted({int(r["pool_tokens"]) for r in rows if r["pool_tokens"]})
    unlimited = {str(int(n)): float(np.mean(v)) for n, v in _by_size(fresh).items()}
    assert s["unlimited"].keys() == unlimited.keys()
    for n, v in unlimited.items():
        assert s["unlimited"][n] == pytest.approx(v, rel=1e-9)
    assert len(s["results"]) == len(s["pools"]) * len(unlimited)
    for r in s["results"]:
        pooled = [x["final_eval_loss"] for x in rows
                  if x["pool_tokens"] == r["pool_tokens"] and x["n_params_total"] == r["n_params"]]
        assert r["final_eval_loss"] == pytest.approx(np.mean(pooled), rel=1e-9)
        assert r["unlimited_eval_loss"] == pytest.approx(unlimited[str(r["n_params"])], rel=1e-9)
        assert r["excess"] == pytest.approx(r["final_eval_loss"] - r["unlimited_eval_loss"], abs=1e-12)
        assert r["epochs"] == pytest.approx(s["tokens_seen"] / r["pool_tokens"])


def _zipf_exponent(s, out):
    from knobsim.config import LanguageConfig
    from knobsim.data import ideal
    from knobsim.data.language import build_language

    sweeps = sorted(out.glob("sweep-zipf*"))
    assert len(s["per_zipf"]) == len(sweeps) >= 2
    assert "zipf_knowledge.png" in s["figures"] and (out / "zipf_knowledge.png").stat().st_size > 10_000
    for p in s["per_zipf"]:
        rows = results(out / f"sweep-zipf{p['zipf']:g}")
        assert {r["zipf"] for r in rows} == {p["zipf"]}
        lang = build_language(LanguageConfig(zipf=p["zipf"]))  # the runs' language
        assert p["entropy_floor"] == pytest.approx(rows[0]["entropy_floor"], rel=1e-12)
        assert p["entropy_floor"] == pytest.approx(lang.entropy_rate, rel=1e-12)
        assert p["alpha_predicted"] == pytest.approx(p["zipf"] - 1)
        _number(p["alpha"])
        assert p["tokens"] == sorted({int(r["tokens"]) for r in rows})
        assert p["learnable_rank_at_D"] == ideal.learnable_rank(lang, p["tokens"][-1])
        # The ideal learner's own exponent on that language (exact: recomputed here).
        fit = ideal.fit_ideal(lang)
        assert p["alpha_ideal"] == pytest.approx(fit.alpha, rel=1e-9)
        assert p["ideal_slope_spread"] == pytest.approx(fit.slope_spread, rel=1e-9)
        assert p["ideal_E_rel_error"] == pytest.approx(fit.rel_error, rel=1e-9)
        # K_eff of every size and run: the K at which the ideal learner's loss is the run's
        # (0 above the ideal learner of no words, which tiny runs do not beat).
        l0 = ideal.ideal_loss(lang, 0)
        per = _by_size(rows)
        assert [q["n_params"] for q in p["per_size"]] == sorted(per)
        for q in p["per_size"]:
            assert q["loss_mean"] == pytest.approx(np.mean(per[q["n_params"]]), rel=1e-9)
            assert q["seeds"] == len(per[q["n_params"]])
            want = 0.0 if q["loss_mean"] >= l0 else ideal.k_effective(lang, q["loss_mean"])
            assert q["k_eff"] == pytest.approx(want, rel=1e-9, abs=1e-12)
        assert sorted((r["n_params"], r["seed"]) for r in p["runs"]) == sorted(
            (int(r["n_params_total"]), int(r["seed"])) for r in rows)
        for r in p["runs"]:
            loss = [x["final_eval_loss"] for x in rows
                    if (int(x["n_params_total"]), int(x["seed"])) == (r["n_params"], r["seed"])][0]
            assert (r["k_eff"] == 0) == (loss >= l0)
        # gamma once two sizes know k_eff_min words; the prediction is gamma x alpha_ideal.
        known = sorted({r["n_params"] for r in p["runs"] if r["k_eff"] >= s["k_eff_min"]})
        if len(known) < 2:
            assert p["gamma"] is None and p["alpha_predicted_from_ideal"] is None
        else:
            assert p["k_eff_n_used"] == known
            g = _number(p["gamma"])
            assert p["alpha_predicted_from_ideal"] == pytest.approx(g * p["alpha_ideal"], rel=1e-12)
            lo, hi = p["alpha_predicted_from_ideal_ci"]
            assert [lo, hi] == pytest.approx([x * p["alpha_ideal"] for x in p["gamma_ci"]], rel=1e-12)
    floors = [p["entropy_floor"] for p in s["per_zipf"]]
    assert len(set(floors)) == len(floors), "languages of different Zipf exponents share a floor"
    alphas = [p["alpha_ideal"] for p in s["per_zipf"]]
    assert alphas == sorted(alphas), "the ideal learner's alpha must rise with the Zipf exponent"


def _isoflop(s, out):
    rows = results(out / "sweep")
    budgets = {}
    for r in rows:
        budgets.setdefault(float(r["tag"].split("=")[1]), set()).add(int(r["n_params_total"]))
    assert [b["C"] for b in s["per_budget"]] == sorted(budgets)
    for b in s["per_budget"]:
        assert b["sizes"] == sorted(budgets[b["C"]])
        _number(b["n_opt_approach3"])
        # characters per knob at the optimum: D_opt / N_opt with D_opt = C / (6 N_opt)
        assert b["tokens_per_knob_approach3"] == pytest.approx(b["C"] / (6 * b["n_opt_approach3"] ** 2), rel=1e-9)
        if b["n_opt"] is not None:
            assert b["tokens_per_knob"] == pytest.approx(b["d_opt"] / b["n_opt"], rel=1e-9)
    assert s["entropy_floor"] == pytest.approx(rows[0]["entropy_floor"], rel=1e-12)
    _number(s["a_approach3"])


def _ideal_learner(s, out):
    for k in ("E_rel_error", "alpha", "entropy_floor", "english_E_rel_error"):
        _number(s[k])


# Per experiment: how its summary agrees with the runs it was made from.
CONSISTENT = {"scaling_params": _scaling_params, "learning_curves": _learning_curves,
              "explosion": _explosion, "data_scaling": _data_scaling,
              "zipf_exponent": _zipf_exponent, "isoflop": _isoflop, "ideal_learner": _ideal_learner}
