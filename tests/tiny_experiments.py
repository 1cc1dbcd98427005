"""Shared by the test_experiments*.py files: each experiment script in its hidden --tiny
mode, and what its summary.json must hold. The experiments are split over several test
files only so that `pytest -n 2 --dist loadfile` can run them on both workers."""

import json
import runpy
import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot

ROOT = Path(__file__).resolve().parents[1]

EXPERIMENTS = {
    "scaling_params": ("scaling_params.png", ("alpha", "alpha_ci", "r2", "E_fit", "entropy_floor",
                                              "n_min", "n_max", "alpha_floor_fixed")),
    "learning_curves": ("learning_curves.png", ("beta_frontier", "frontier", "entropy_floor")),
    "explosion": ("explosion.png", ("alpha", "E_fit", "extrapolations", "warning")),
    "data_scaling": ("data_scaling.png", ("results", "unlimited", "pools")),
    "zipf_exponent": ("zipf_exponent.png", ("per_zipf", "d_alpha_d_zipf")),
    "isoflop": ("isoflop.png", ("a_approach2", "a_approach2_ci", "a_approach3", "per_budget")),
    "ideal_learner": ("ideal_learner.png", ("E_rel_error", "alpha", "slope_spread", "entropy_floor",
                                            "english_E_rel_error", "scale-free", "english")),
}


def run_experiment_tiny(name, out, monkeypatch):
    """`python experiments/<name>.py --tiny -q --out OUT`, run as __main__ in this process.

    In-process rather than a subprocess: a Python + JAX + matplotlib start is 3-4 s per
    script, and programs another test already compiled here are reused. The script's own
    path (argv, argparse, its `if __name__ == "__main__"`) is what runs; an exception fails
    the test with its traceback."""
    script = ROOT / "experiments" / f"{name}.py"
    monkeypatch.syspath_prepend(str(script.parent))  # as `python script.py` puts it first
    monkeypatch.setattr(sys, "argv", [str(script), "--tiny", "-q", "--out", str(out)])
    monkeypatch.chdir(ROOT)
    matplotlib.use("Agg")
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        matplotlib.pyplot.close("all")


def check_experiment_runs_tiny(name, outdir, monkeypatch):
    """Run experiments/<name>.py --tiny into outdir/<name>-tiny; check its PNG and summary."""
    out = outdir / f"{name}-tiny"  # the default names: learning_curves finds scaling_params-tiny
    run_experiment_tiny(name, out, monkeypatch)
    png, keys = EXPERIMENTS[name]
    assert (out / png).stat().st_size > 10_000
    s = json.loads((out / "summary.json").read_text())
    assert s["mode"] == "tiny" and png in s["figures"]
    for k in keys:
        assert k in s, k
