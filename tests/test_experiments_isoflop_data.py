"""experiments/isoflop.py and data_scaling.py run end to end in --tiny mode (see
test_experiments.py; a file of their own so that the two xdist workers share the load)."""

import pytest

from tiny_experiments import check_experiment_runs_tiny


@pytest.mark.slow
@pytest.mark.parametrize("name", ["isoflop", "data_scaling"])
def test_experiment_runs_tiny_and_writes_figures_and_summary(name, tmp_path, monkeypatch):
    check_experiment_runs_tiny(name, tmp_path, monkeypatch)
