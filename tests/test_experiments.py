"""Every experiment script runs end to end in its hidden --tiny mode (a few tiny runs) and
writes its PNGs and summary.json. The numbers a tiny run produces mean nothing; what is
tested is that the script, its sweep, its fits and its figures fit together."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def outdir(tmp_path_factory):
    # One folder for all: learning_curves and explosion reuse scaling_params' tiny sweep
    # beside their own --out, as they do in experiments/out.
    return tmp_path_factory.mktemp("experiments")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_experiment_runs_tiny_and_writes_figures_and_summary(name, outdir):
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


def test_every_experiment_documents_quick_and_full():
    for name in EXPERIMENTS:
        doc = (ROOT / "experiments" / f"{name}.py").read_text()
        assert re.search(rf"python experiments/{name}\.py --quick +# .*\d", doc), name  # with a runtime
        assert re.search(rf"python experiments/{name}\.py +# .*\d", doc), name  # the full mode
    readme = (ROOT / "experiments" / "README.md").read_text()
    for name in EXPERIMENTS:
        assert f"{name}.py" in readme, name
