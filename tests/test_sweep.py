"""Sweeps: size parsing, sharding, resuming, the results table, lr tuning, CLI errors.

Runs are tiny (linear models of ~100 knobs, 4 steps of 2 x 8 tokens): what is tested is
the bookkeeping, not the learning.
"""

import csv
import json
import os
import subprocess
import sys

import pytest

from knobsim.scaling import sweep as S
from knobsim.core import runtime
from knobsim.core import train as T
from knobsim.core.plan import plan_run
from knobsim.errors import KnobsimError

TINY = dict(arch="linear", tokens=64, batch=2, seq=8)
# threads="all": every run in this process, on all cores (the bookkeeping tested here is the
# same for runs in worker processes; tests/test_sweep_workers.py tests those)
SETTINGS = S.Settings(arch="linear", batch=2, seq=8, check_memory=False, threads="all")


def _points(budgets=(100, 200), seeds=2):
    return S.sweep_points(list(budgets), seeds, **TINY)


# -- parsing -----------------------------------------------------------------------------


def test_sizes_range_is_log_spaced_and_list_is_sorted():
    assert S.parse_sizes("1e3:1e6:4") == [1000, 10000, 100000, 1000000]
    assert S.parse_sizes("1e3:1e6:8")[0] == 1000 and len(S.parse_sizes("1e3:1e6:8")) == 8
    assert S.parse_sizes("1e4,1e3,100k") == [1000, 10000, 100000]
    assert S.parse_sizes("5k") == [5000]
    assert S.parse_sizes("2k:2k:1") == [2000]


@pytest.mark.parametrize("text,needle", [
    ("1e3:1e6", "LOW:HIGH:COUNT"),
    ("1e6:1e3:4", "below the low end"),
    ("1e3:1e6:0", "at least 1"),
    ("1e3:1e6:x", "whole number"),
    ("1e3:1e6:1", "cannot span"),
    ("1e3:1.002e3:5", "repeated sizes"),
    ("abc", "not a number"),
    ("", "empty"),
])
def test_bad_sizes_are_one_line_errors(text, needle):
    with pytest.raises(KnobsimError, match=needle) as e:
        S.parse_sizes(text)
    assert "\n" not in str(e.value)


def test_shard_syntax():
    assert S.parse_shard(None) == (0, 1)
    assert S.parse_shard("3/8") == (3, 8)
    for bad in ("8/8", "1", "a/b", "-1/4", "1/0", "1/2/3"):
        with pytest.raises(KnobsimError, match="--shard"):
            S.parse_shard(bad)


def test_shards_partition_the_points():
    pts = _points(budgets=(100, 150, 200, 300, 400), seeds=3)
    for n in (1, 2, 3, 4, 7, 20):
        shards = [S.shard_points(pts, (i, n)) for i in range(n)]
        flat = [p for sh in shards for p in sh]
        assert sorted(map(repr, flat)) == sorted(map(repr, pts))  # every point exactly once
        assert max(map(len, shards)) - min(map(len, shards)) <= 1  # balanced by count


def test_tokens_per_param_uses_the_exact_count():
    pts = S.sweep_points([1000], 1, arch="transformer", tokens_per_param=20, batch=2, seq=8)
    cfg = plan_run(params=1000, arch="transformer", batch=2, seq=8, check_memory=False)
    assert pts[0].tokens == 20 * cfg.model.n_params_total
    with pytest.raises(KnobsimError, match="not both"):
        S.sweep_points([1000], 1, tokens=10, tokens_per_param=2)


def test_break_even_interpolates_the_measurement():
    table = ((1e3, 1e8), (1e5, 1e6))
    assert S.break_even_tokens(1e3, table) == pytest.approx(1e8)
    assert S.break_even_tokens(1e4, table) == pytest.approx(1e7)  # halfway in log-log
    assert S.break_even_tokens(1e2, table) == pytest.approx(1e8)  # held beyond the ends
    assert S.break_even_tokens(1e7, table) == pytest.approx(1e6)
    assert S.break_even_tokens(1e4, ((1e3, float("inf")), (1e5, float("inf")))) == float("inf")


# -- a finished sweep --------------------------------------------------------------------


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    settings = S.Settings(arch="linear", batch=2, seq=8, vmap="always", check_memory=False,
                          threads="all")
    res = S.run_sweep(_points(), settings, out)
    return out, settings, res


def test_table_schema_and_values(done):
    out, _, res = done
    assert res.trained == 4 and res.skipped == 0
    with open(out / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == S.RESULT_COLUMNS
        rows = list(reader)
    assert len(rows) == 4
    required = ("arch", "shape", "n_params_total", "n_params_nonembedding", "tokens", "compute",
                "final_eval_loss", "entropy_floor", "lr", "seed", "wall_s", "run_dir")
    assert S.RESULT_COLUMNS[: len(required)] == required
    for r in rows:
        assert r["arch"] == "linear"
        assert isinstance(json.loads(r["shape"]), dict)
        n, d = int(r["n_params_total"]), int(r["tokens"])
        assert d == 64 and float(r["compute"]) == pytest.approx(6 * n * d)
        assert float(r["final_eval_loss"]) > float(r["entropy_floor"]) > 0
        assert r["lr_source"] == "rule" and r["n_seeds_together"] == "2"
        assert r["threads"] == str(runtime.cores())  # all cores: recorded in point.json
        assert os.path.isfile(os.path.join(r["run_dir"], "summary.json"))
    assert sorted((int(r["budget"]), int(r["seed"])) for r in rows) == [(100, 0), (100, 1), (200, 0), (200, 1)]
    parsed = S.read_rows(out / "results.csv")
    assert parsed[0]["n_params_total"] > 0 and isinstance(parsed[0]["final_eval_loss"], float)


def test_one_reader_for_results_rows_and_the_fits_table(done):
    """results.csv read as rows (the sweep's) and as a loss table (the fits') through the one
    CSV reader: the same numbers, bit for bit; the old sweep name warns and is read_rows."""
    from knobsim import read_table

    out, _, _ = done
    path = out / "results.csv"
    rows = S.read_rows(path)
    with open(path, newline="") as f:  # the file as csv.DictReader sees it, for comparison
        raw = list(csv.DictReader(f))
    assert [r["run_dir"] for r in rows] == [r["run_dir"] for r in raw]
    assert [r["final_eval_loss"] for r in rows] == [float(r["final_eval_loss"]) for r in raw]
    assert [r["n_seeds_together"] for r in rows] == [int(r["n_seeds_together"]) for r in raw]
    assert all(r["epochs"] is None for r in rows)  # empty cells: None, not 0 or ""
    t = read_table(path, n_col="n_params_total", d_col="tokens", loss_col="final_eval_loss")
    assert t.loss.tolist() == [r["final_eval_loss"] for r in rows]
    assert t.n.tolist() == [r["n_params_total"] for r in rows]
    assert t.d.tolist() == [r["tokens"] for r in rows]
    with pytest.warns(DeprecationWarning, match="read_rows"):
        assert S.read_table is S.read_rows
    assert "read_table" not in S.__all__


def test_rerun_skips_finished_points(done, monkeypatch):
    out, settings, _ = done

    def boom(*a, **k):
        raise AssertionError("a finished point was trained again")

    monkeypatch.setattr(T, "train", boom)
    monkeypatch.setattr(T, "train_seeds", boom)
    res = S.run_sweep(_points(), settings, out)
    assert res.trained == 0 and res.skipped == 4 and len(res.rows) == 4


def test_a_second_sweep_on_a_busy_folder_is_refused_and_changes_nothing(done, monkeypatch):
    """Two processes training into one sweep folder at once (a command started twice) once
    both trained the same runs and wrote their logs and checkpoints over each other. The
    folder is locked while a sweep runs: the second gets one line, exit code 2, and writes
    nothing. A shard locks only its own part (shards share a folder by design)."""
    from knobsim.io import rundir as record

    out, settings, _ = done

    def files():
        return {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != ".lock"}

    def boom(*a, **k):
        raise AssertionError("a locked-out sweep trained")

    monkeypatch.setattr(T, "train", boom)
    monkeypatch.setattr(T, "train_seeds", boom)
    before = files()
    with record.exclusive(out, "the test"):  # as a running sweep holds it
        with pytest.raises(KnobsimError, match=r"is in use by another sweep \(pid \d+\): wait for it") as e:
            S.run_sweep(_points(), settings, out)
        assert e.value.exit_code == 2
        assert files() == before  # not a file written or touched
        res = S.run_sweep(_points(), settings, out, shard=(0, 2))  # a shard's own lock is free
        assert res.trained == 0
    res = S.run_sweep(_points(), settings, out)  # released: the folder is usable again
    assert res.trained == 0 and res.skipped == 4


def test_killed_sweep_keeps_finished_rows_and_resumes(tmp_path, monkeypatch):
    pts = _points(budgets=(100, 150, 200), seeds=1)
    settings = S.Settings(arch="linear", batch=2, seq=8, vmap="never", check_memory=False,
                          threads="all")
    real_train, calls = T.train, []

    def killed_on_second(cfg, run=None, on_chunk=None, lang=None, resume=False):
        calls.append(cfg.model.budget)
        if len(calls) == 2:  # die mid-run: after the first chunk, before summary.json
            def die(r):
                raise KeyboardInterrupt
            return real_train(cfg, run=run, on_chunk=die, lang=lang, resume=resume)
        return real_train(cfg, run=run, on_chunk=on_chunk, lang=lang, resume=resume)

    monkeypatch.setattr(T, "train", killed_on_second)
    with pytest.raises(KeyboardInterrupt):
        S.run_sweep(pts, settings, tmp_path)
    rows = S.read_rows(tmp_path / "results.csv")
    assert [r["budget"] for r in rows] == [100]  # the finished run's row survived the kill
    partial = [p for p in (tmp_path / "runs").iterdir() if not (p / "summary.json").exists()]
    assert len(partial) == 1 and (partial[0] / "config.json").exists()

    resumed = []

    def record_resume(cfg, run=None, on_chunk=None, lang=None, resume=False):
        resumed.append((cfg.model.budget, resume))
        return real_train(cfg, run=run, on_chunk=on_chunk, lang=lang, resume=resume)

    monkeypatch.setattr(T, "train", record_resume)
    res = S.run_sweep(pts, settings, tmp_path)
    assert res.trained == 2 and res.skipped == 1
    # The killed run continued from its checkpoint; the untouched one started fresh.
    assert resumed == [(150, True), (200, False)]
    assert [r["budget"] for r in res.rows] == [100, 150, 200]
    assert all((p / "summary.json").exists() for p in (tmp_path / "runs").iterdir())


def test_shards_then_plain_rerun_merge_into_one_table(tmp_path):
    pts = _points(budgets=(100, 200), seeds=1)
    a = S.run_sweep(pts, SETTINGS, tmp_path, shard=(0, 2))
    assert a.trained == 1 and [r["budget"] for r in a.rows] == [100]
    b = S.run_sweep(pts, SETTINGS, tmp_path, shard=(1, 2))
    assert b.trained == 1
    merged = S.run_sweep(pts, SETTINGS, tmp_path)
    assert merged.trained == 0 and merged.skipped == 2
    assert [r["budget"] for r in S.read_rows(tmp_path / "results.csv")] == [100, 200]


def test_other_settings_train_new_runs_beside_the_old(done):
    out, settings, _ = done
    other = S.sweep_points([100], 1, arch="linear", tokens=96, batch=2, seq=8)
    res = S.run_sweep(other, settings, out)
    assert res.trained == 1 and len(res.rows) == 5  # D=96 is a new run, not a finished one


def test_a_folder_with_runs_on_another_language_keeps_them_out_of_the_table(done, tmp_path, capsys):
    """A sweep rerun after the language changed trains beside the old runs; its table (and
    fits) hold only its own language's runs, and it says what it left out."""
    import dataclasses
    import shutil

    from knobsim.config import LanguageConfig

    out, settings, _ = done
    copy = tmp_path / "sweep"
    shutil.copytree(out, copy)
    other = dataclasses.replace(settings, language=LanguageConfig(n_words=300, zipf=1.5))
    res = S.run_sweep(_points(), other, copy)
    assert res.trained == 4 and len(res.rows) == 4
    assert {r["zipf"] for r in res.rows} == {1.5}
    assert "on another language" in capsys.readouterr().err
    back = S.run_sweep(_points(), settings, copy)  # the old language again: its own 4 rows
    assert back.trained == 0 and {r["zipf"] for r in back.rows} == {settings.language.zipf}


def test_tune_lr_keeps_the_best_of_the_grid(tmp_path):
    pts = _points(budgets=(100,), seeds=1)
    settings = S.Settings(arch="linear", batch=2, seq=8, tune_lr=True, lr_grid=(0.1, 3.0),
                          check_memory=False, threads="all")
    res = S.run_sweep(pts, settings, tmp_path)
    assert res.trained == 3  # two tuning runs and the run itself
    with open(tmp_path / "lr_tune.csv", newline="") as f:
        grid = list(csv.DictReader(f))
    assert len(grid) == 2
    best = min(grid, key=lambda r: float(r["final_eval_loss"]))
    assert best["best"] == "1"
    (row,) = res.rows
    assert row["lr_source"] == "tuned" and row["lr"] == pytest.approx(float(best["lr"]))
    assert res.tuned[(100, 64, 0)] == pytest.approx(float(best["lr"]))


def test_shards_refuse_to_tune_and_tune_only_prepares_them(tmp_path):
    pts = _points(budgets=(100,), seeds=2)
    settings = S.Settings(arch="linear", batch=2, seq=8, tune_lr=True, lr_grid=(0.5, 2.0),
                          check_memory=False, threads="all")
    with pytest.raises(KnobsimError, match="--tune-only"):
        S.run_sweep(pts, settings, tmp_path, shard=(0, 2))
    assert not (tmp_path / "runs").exists()
    for i in range(2):  # the grid's two runs, one per shard
        r = S.run_sweep(pts, settings, tmp_path, shard=(i, 2), tune_only=True)
        assert r.trained == 1
    r = S.run_sweep(pts, settings, tmp_path, shard=(1, 2))
    assert r.trained == 1 and r.rows[0]["lr_source"] == "tuned"


# -- the command line --------------------------------------------------------------------

ENV = {**os.environ, "KNOBSIM_PEAK_FLOPS": "1e11"}


def knobsim(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "knobsim", *args], capture_output=True,
                          text=True, cwd=cwd, env=ENV, timeout=600)


@pytest.mark.parametrize("args,needle", [
    (["--params", "1e6:1e3:4"], "below the low end"),
    (["--params", "1e3:1e6"], "LOW:HIGH:COUNT"),
    (["--params", "1e3", "--shard", "4/4"], "--shard"),
    (["--params", "1e3", "--shard", "two"], "--shard"),
    (["--params", "1e3", "--arch", "rnn"], "--arch"),
    (["--params", "10"], "below the smallest transformer"),
    (["--params", "1e3", "--lr", "1e-3", "--tune-lr"], "not both"),
    (["--params", "1e3", "--jobs", "0"], "--jobs '0'"),
    (["--params", "1e3", "--jobs", "abc"], "--jobs 'abc'"),
    (["--params", "1e3", "--jobs", "-2"], "at least 1"),
    (["--params", "1e3", "--threads", "two"], "--threads"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, args, needle, cli):
    # In-process through knobsim.cli.main (conftest's `cli`): an escaped exception would
    # fail the test; the real-process case is the next test.
    r = cli("sweep", *args, "--out", str(tmp_path / "s"))
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "s").exists()  # nothing half-written


def test_cli_cores_bench_that_is_not_one_is_one_line_exit_2(tmp_path, cli):
    bad = tmp_path / "bench.json"
    bad.write_text('{"break_even": []}')
    r = cli("sweep", "--params", "1e3", "--cores-bench", str(bad), "--out", str(tmp_path / "s"))
    assert r.returncode == 2 and "bench_sweep_cores.py" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "s").exists()


def test_cli_bad_input_in_a_real_process_is_one_line_exit_2(tmp_path):
    r = knobsim("sweep", "--params", "1e6:1e3:4", "--out", str(tmp_path / "s"))
    assert r.returncode == 2, r.stderr
    assert "below the low end" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_cli_sweep_end_to_end(tmp_path):
    args = ["sweep", "--params", "100,200", "--seeds", "2", "--arch", "linear", "--tokens", "64",
            "--batch", "2", "--seq", "8", "--out", str(tmp_path / "s"), "-q"]
    r = knobsim(*args)
    assert r.returncode == 0, r.stderr
    assert "trained 4" in r.stdout and "knobsim fit --csv" in r.stdout
    r = knobsim(*args)
    assert r.returncode == 0 and "trained 0, already finished 4" in r.stdout
