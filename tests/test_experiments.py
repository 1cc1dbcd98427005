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
