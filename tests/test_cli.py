"""The command line end to end, as a user types it. Real subprocesses (real exit codes,
real output) for one test of each command; the other cases call the same entry point,
knobsim.cli.main, in this process (the ``cli`` fixture of conftest.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ENV = {**os.environ, "KNOBSIM_PEAK_FLOPS": "1e11"}


def knobsim(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "knobsim", *args], capture_output=True, text=True,
                          cwd=cwd, env=env or ENV, timeout=600)


@pytest.mark.slow
def test_train_end_to_end_writes_a_complete_run(tmp_path):
    out = tmp_path / "run"
    r = knobsim("train", "--params", "2k", "--steps", "30", "--batch", "8", "--seq", "32",
                "--out", str(out), "--lr", "1e-2")
    assert r.returncode == 0, r.stderr
    assert "entropy floor" in r.stdout and "MFU" in r.stdout and "with attention" in r.stdout
    assert "Traceback" not in r.stderr
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["arch"] == "transformer" and cfg["train"]["steps"] == 30
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and "eval_loss" in rows[0]
    steps = [r["step"] for r in rows if "loss" in r]
    assert steps == list(range(1, 31))
    assert "eval_loss" in rows[-1]
    s = json.loads((out / "summary.json").read_text())
    for k in ("n_params_total", "n_params_nonembedding", "final_train_loss", "final_eval_loss",
              "entropy_floor", "unigram_loss", "tokens", "tokens_per_s", "mfu", "wall_s"):
        assert k in s, k
    assert s["tokens"] == 30 * 8 * 32
    assert s["final_eval_loss"] < s["initial_eval_loss"]
    with np.load(out / "params.npz") as z:  # plain numpy reads the weights
        assert sum(z[k].size for k in z.files) == s["n_params_total"]
        assert "blocks.0.attn.w_qkv_D3D" in z.files


@pytest.mark.slow
@pytest.mark.parametrize("arch,budget", [("linear", "200"), ("mlp", "2e4")])
def test_small_families_train_from_the_cli(tmp_path, arch, budget, cli):
    r = cli("train", "--arch", arch, "--params", budget, "--steps", "20", "--batch", "8",
                "--seq", "32", "--out", str(tmp_path / arch), "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["arch"] == arch and s["final_eval_loss"] < s["initial_eval_loss"]


def test_a_plain_run_records_no_mfu_and_record_mfu_does(tmp_path, cli):
    """A plain run writes nothing outside its run directory but knobsim's caches (issue 24):
    the zoo's MFU is recorded only when asked."""
    from pathlib import Path

    from knobsim.core import hardware

    mfu_json = Path(os.environ["KNOBSIM_CACHE"]) / "mfu.json"
    args = ("train", "--params", "1k", "--steps", "2", "--batch", "2", "--seq", "8", "-q")
    r = cli(*args, "--out", str(tmp_path / "plain"))
    assert r.returncode == 0, r.stderr
    assert not mfu_json.exists() and hardware.measured_mfu() is None
    r = cli(*args, "--out", str(tmp_path / "asked"), "--record-mfu")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "asked" / "summary.json").read_text())
    seen = hardware.measured_mfu()
    assert seen["n_params"] == s["n_params_total"] and seen["mfu"] == s["mfu"]


def test_default_run_directory_is_under_runs(tmp_path, cli):
    r = cli("train", "--params", "1k", "--steps", "2", "--batch", "2", "--seq", "8", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("transformer-1k-s0-")
    assert (run / "summary.json").exists()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--params", "-5"], "at least 1"),
        (["--params", "abc"], "not a number"),
        (["--params", "0"], "at least 1"),
        (["--params", "1e5", "--tokens", "1"], "less than one step"),
        (["--arch", "nope"], "nope"),
        (["--params", "1e10"], "GiB"),
        (["--params", "1e5", "--lr", "-1"], "--lr"),
        (["--params", "50", "--arch", "linear"], "below the smallest"),
        (["--params", "1e3", "--no-watch", "--tensorboard"], "--tensorboard need watching"),
        (["--params", "1e3", "--devices", "0"], "--devices"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_no_run(tmp_path, args, needle, cli):
    # The first case in a real process; the others through the same main() in this one.
    real = args == ["--params", "-5"]
    r = (knobsim if real else cli)("train", *args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()


def test_existing_out_is_refused_and_kept(tmp_path, cli):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("earlier result")
    r = cli("train", "--params", "1k", "--steps", "2", "--out", str(out))
    assert r.returncode == 2 and "already exists" in r.stderr
    assert (out / "keep.txt").read_text() == "earlier result"
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_a_linear_models_mfu_line_says_nothing_of_attention(tmp_path, cli):
    r = cli("train", "--arch", "linear", "--params", "200", "--steps", "20", "--out", tmp_path / "lin",
            "--no-watch")
    assert r.returncode == 0, r.stderr
    (line,) = [x for x in r.stdout.splitlines() if x.startswith("MFU")]
    assert "(6N)" in line and "attention" not in line


def _machine_with(monkeypatch, gib: float):
    import knobsim.core.plan

    monkeypatch.setattr(knobsim.core.plan, "_available_memory", lambda: int(gib * 2**30))


def test_dry_run_json_reports_shape_counts_and_memory(cli, monkeypatch):
    _machine_with(monkeypatch, 4096)
    r = cli("train", "--params", "1e9", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert abs(d["n_params_total"] - 1e9) / 1e9 < 0.1
    assert d["n_params_nonembedding"] < d["n_params_total"]
    assert d["shape"]["n_layer"] >= 1 and d["memory_bytes"] > 16e9
    assert d["memory_available_bytes"] == 4096 * 2**30 and d["refused"] is None


@pytest.mark.parametrize("as_json", [False, True])
def test_dry_run_refuses_what_the_real_run_refuses(cli, monkeypatch, tmp_path, as_json):
    # A machine too small for 1e9 knobs: the real run refuses with exit 2, and so must the
    # dry run, after showing the plan (and the memory the machine has).
    _machine_with(monkeypatch, 8)
    real = cli("train", "--params", "1e9", cwd=tmp_path)
    assert real.returncode == 2 and "GiB" in real.stderr
    r = cli("train", "--params", "1e9", "--dry-run", *(["--json"] if as_json else []))
    assert r.returncode == real.returncode
    (line,) = r.stderr.strip().splitlines()
    assert "would be refused" in line and real.stderr.strip().split("error: ")[1] in line
    if as_json:
        assert json.loads(r.stdout)["refused"] in line
    else:
        assert "this machine has 8.0 GiB available" in r.stdout and "non-embedding" in r.stdout
    assert not (tmp_path / "runs").exists()


def test_dry_run_prints_the_breakdown(cli):
    r = cli("train", "--params", "100k", "--dry-run")
    assert r.returncode == 0
    for word in ("attn", "mlp", "token_embedding", "non-embedding", "memory", "floor"):
        assert word in r.stdout, word


def test_data_prints_sample_and_exact_facts(cli):
    r = knobsim("data", "--json", "--chars", "200")
    d = json.loads(r.stdout)
    assert len(d["sample"]) == 200 and d["vocab_size"] == 27
    assert d["entropy_floor"] < d["unigram_loss"]
    r = cli("data")
    assert "entropy floor" in r.stdout and "unigram" in r.stdout


def test_python_dash_m_and_help():
    r = knobsim("--help")
    assert r.returncode == 0 and "train" in r.stdout and "data" in r.stdout
