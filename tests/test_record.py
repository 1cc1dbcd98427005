import json

import numpy as np
import pytest

from knobsim.errors import KnobsimError
from knobsim.io.rundir import RunDir, load_params, read_json, read_metrics


def test_metrics_reader_tolerates_a_torn_last_line(tmp_path):
    run = RunDir.create(tmp_path / "r")
    run.append_metrics([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}])
    run.close()
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "lo')  # a kill mid-write
    assert [r["step"] for r in read_metrics(tmp_path / "r")] == [1, 2]


def test_two_runs_never_share_a_directory(tmp_path):
    a = RunDir.create(tmp_path / "same", unique=True)
    b = RunDir.create(tmp_path / "same", unique=True)
    assert a.path != b.path and a.path.exists() and b.path.exists()
    with pytest.raises(KnobsimError, match="already exists"):
        RunDir.create(tmp_path / "same")


def test_summary_and_params_round_trip(tmp_path):
    run = RunDir.create(tmp_path / "r")
    run.write_summary({"loss": np.float32(1.5), "nan": float("nan")})
    run.save_params({"a.b": np.arange(3.0)})
    assert json.loads((tmp_path / "r" / "summary.json").read_text()) == {"loss": 1.5, "nan": None}
    np.testing.assert_array_equal(load_params(tmp_path / "r")["a.b"], np.arange(3.0))
    assert not list((tmp_path / "r").glob(".*tmp*"))  # no temporary files left


def test_corrupt_json_is_one_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(KnobsimError, match="corrupt"):
        read_json(tmp_path / "config.json")
