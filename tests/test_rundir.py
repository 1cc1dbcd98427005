"""metrics.jsonl readers: a torn last line is skipped with a warning; a bad line in the
middle is an error naming the file and the line; an empty or missing file says so."""

import json

import pytest

from knobsim.errors import KnobsimError
from knobsim.io.rundir import RunDir, read_metrics


def _run(tmp_path, n=5):
    run = RunDir.create(tmp_path / "r")
    run.append_metrics([{"step": i, "loss": 3.0 - 0.1 * i} for i in range(n)])
    run.close()
    return tmp_path / "r"


def _corrupt_line(path, lineno, text='{"step": 2, "lo'):
    lines = path.read_text().splitlines(keepends=True)
    lines[lineno - 1] = text + "\n"
    path.write_text("".join(lines))


def test_a_bad_line_in_the_middle_is_an_error_naming_the_line(tmp_path):
    run = _run(tmp_path)
    _corrupt_line(run / "metrics.jsonl", 3)
    with pytest.raises(KnobsimError, match=r"metrics\.jsonl line 3 is corrupt .*2 lines follow") as e:
        read_metrics(run)
    assert e.value.exit_code == 2


def test_a_line_that_is_json_but_not_an_object_is_corrupt_too(tmp_path):
    run = _run(tmp_path)
    _corrupt_line(run / "metrics.jsonl", 2, "[1, 2]")
    with pytest.raises(KnobsimError, match="line 2 is corrupt"):
        read_metrics(run)


def test_a_torn_last_line_is_skipped_and_said(tmp_path, capsys):
    run = _run(tmp_path)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "lo')  # a kill mid-write
    assert [r["step"] for r in read_metrics(run)] == [0, 1, 2, 3, 4]
    err = capsys.readouterr().err
    assert "line 6 is torn" in err and err.count("\n") == 1


def test_blank_lines_are_not_data_and_not_errors(tmp_path, capsys):
    run = _run(tmp_path, n=2)
    (run / "metrics.jsonl").write_text(
        json.dumps({"step": 0}) + "\n\n" + json.dumps({"step": 1}) + "\n\n")
    assert [r["step"] for r in read_metrics(run)] == [0, 1]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("case", ["empty", "missing"])
def test_an_empty_or_missing_file_says_so(tmp_path, capsys, case):
    run = _run(tmp_path)
    if case == "empty":
        (run / "metrics.jsonl").write_text("\n")
    else:
        (run / "metrics.jsonl").unlink()
    assert read_metrics(run) == []
    err = capsys.readouterr().err
    assert ("is empty" if case == "empty" else "does not exist") in err and err.count("\n") == 1
    assert read_metrics(run, on_warning=None) == [] and capsys.readouterr().err == ""


def test_watch_of_a_run_with_a_corrupt_middle_line_exits_2_naming_it(tmp_path, cli):
    run = tmp_path / "run"
    r = cli("train", "--arch", "linear", "--params", "200", "--steps", "6", "--batch", "2",
            "--seq", "8", "--chunk", "2", "--out", run, "-q")
    assert r.returncode == 0, r.stderr
    _corrupt_line(run / "metrics.jsonl", 3)
    r = cli("watch", run, "--no-gif")
    assert r.returncode == 2
    assert "metrics.jsonl line 3 is corrupt" in r.stderr and "Traceback" not in r.stderr
    assert not (run / "figures" / "loss.png").exists()
