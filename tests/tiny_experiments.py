"""Shared by the test_experiments*.py files: each experiment script in its hidden --tiny
mode, and what its summary.json must hold. The experiments are split over several test
files only so that `pytest -n 2 --dist loadfile` can run them on both workers."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "KNOBSIM_PEAK_FLOPS": "1e11", "MPLBACKEND": "Agg"}

EXPERIMENTS = {
    "scaling_params": ("scaling_params.png", ("alpha", "alpha_ci", "r2", "E_fit", "entropy_floor",
                                              "n_min", "n_max", "alpha_floor_fixed")),
    "learning_curves": ("learning_curves.png", ("beta_frontier", "frontier", "entropy_floor")),
    "explosion": ("explosion.png", ("alpha", "E_fit", "extrapolations", "warning")),
    "data_scaling": ("data_scaling.png", ("results", "unlimited", "pools")),
    "zipf_exponent": ("zipf_exponent.png", ("per_zipf", "d_alpha_d_zipf")),
    "isoflop": ("isoflop.png", ("a_approach2", "a_approach2_ci", "a_approach3", "per_budget")),
}


def check_experiment_runs_tiny(name, outdir):
    """Run experiments/<name>.py --tiny into outdir/<name>-tiny; check its PNG and summary."""
    out = outdir / f"{name}-tiny"  # the default names: learning_curves finds scaling_params-tiny
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / f"{name}.py"), "--tiny", "-q",
                        "--out", str(out)], capture_output=True, text=True, env=ENV, timeout=900,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    png, keys = EXPERIMENTS[name]
    assert (out / png).stat().st_size > 10_000
    s = json.loads((out / "summary.json").read_text())
    assert s["mode"] == "tiny" and png in s["figures"]
    for k in keys:
        assert k in s, k
