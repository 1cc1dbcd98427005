"""Watched runs: the records, their agreement with the snapshots, training untouched,
figures and GIF, bad run directories, TensorBoard read-back, the live view."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from knobsim.watch import stats as knobs
from knobsim.core import train as T
from knobsim.core.plan import plan_run
from knobsim.errors import KnobsimError
from knobsim.watch.recorder import read_watch
from knobsim.io.rundir import RunDir, read_metrics

ENV = {**os.environ, "KNOBSIM_PEAK_FLOPS": "1e11"}
TINY = dict(params=2000, steps=20, batch=4, seq=16, chunk=5, check_memory=False)


def knobsim(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "knobsim", *args], capture_output=True, text=True,
                          cwd=cwd, env=ENV, timeout=600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny config trained three ways: watched (+ TensorBoard), unwatched, and watched
    every 3 steps without snapshots. The watched run's chunk reports feed the live view."""
    root = tmp_path_factory.mktemp("runs")
    cfg = plan_run(**TINY)
    out = {"root": root, "cfg": cfg}
    out["reports"] = []  # the watched run's chunk reports, for the live view
    out["watched_summary"] = T.train(cfg, run=RunDir.create(root / "watched"), watch=knobs.WatchConfig(),
                                     tensorboard=True, on_chunk=out["reports"].append)
    out["plain_summary"] = T.train(cfg, run=RunDir.create(root / "plain"))
    T.train(cfg, run=RunDir.create(root / "sparse"), watch=knobs.WatchConfig(every=3, snapshots=False))
    return out


def test_recording_does_not_change_training(runs):
    root = runs["root"]
    a, b = read_metrics(root / "watched"), read_metrics(root / "plain")
    assert a == b  # every loss, lr and norm: the same bits, not just close
    assert read_metrics(root / "sparse") == b  # watching every 3rd step, no snapshots
    with np.load(root / "watched" / "params.npz") as za, np.load(root / "plain" / "params.npz") as zb:
        for k in za.files:
            assert np.array_equal(za[k], zb[k]), k


def test_records_every_step_and_snapshots_at_log_steps(runs):
    rec = read_watch(runs["root"] / "watched")
    assert rec.steps.tolist() == list(range(21))
    assert list(rec.snapshots) == [0, 1, 2, 4, 8, 16, 20]
    n_tensors = len(rec.names)
    assert rec.tensor["rel_drift"].shape == (21, n_tensors)
    assert rec.knobs.shape[1] == sum(min(8, t["size"]) for t in rec.index["tensors"])
    assert rec.tensor["drift"][0].tolist() == [0.0] * n_tensors


def test_dials_equal_the_matching_entries_of_the_snapshots(runs):
    rec = read_watch(runs["root"] / "watched")
    for step in rec.snapshots:
        snap = rec.snapshot(step)
        row = rec.knobs[list(rec.steps).index(step)]
        want = [snap[t].ravel()[i] for t, i in zip(rec.knob_tensor, rec.knob_index)]
        assert np.array_equal(row, np.asarray(want, np.float32)), step
    with np.load(runs["root"] / "watched" / "params.npz") as z:  # the final snapshot is the run's result
        final = rec.snapshot(20)
        assert all(np.array_equal(z[k], final[k]) for k in z.files)


def test_in_jit_statistics_agree_with_the_snapshots(runs):
    rec = read_watch(runs["root"] / "watched")
    w0 = rec.snapshot(0)
    for step in (4, 16, 20):
        snap = rec.snapshot(step)
        row = list(rec.steps).index(step)
        for j, name in enumerate(rec.names):
            d = np.linalg.norm((snap[name] - w0[name]).astype(np.float64))
            np.testing.assert_allclose(rec.tensor["drift"][row, j], d, rtol=1e-4, atol=1e-7)
            np.testing.assert_allclose(rec.tensor["weight_norm"][row, j],
                                       np.linalg.norm(snap[name].astype(np.float64)), rtol=1e-5)
    # The update of step 4 is the difference of the snapshots... only where both exist:
    # steps 1 -> 2 are consecutive snapshots.
    u = {n: rec.snapshot(2)[n] - rec.snapshot(1)[n] for n in rec.names}
    row = list(rec.steps).index(2)
    for j, name in enumerate(rec.names):
        np.testing.assert_allclose(rec.tensor["update_norm"][row, j],
                                   np.linalg.norm(u[name].astype(np.float64)), rtol=1e-3, atol=1e-7)


def test_watch_every_k_records_every_kth_step(runs):
    rec = read_watch(runs["root"] / "sparse")
    assert rec.steps.tolist() == [0, 3, 6, 9, 12, 15, 18]
    assert rec.snapshots == {}


def test_figures_and_gif_are_written(runs, tmp_path):
    from PIL import Image

    from knobsim.watch.figures import render

    run = tmp_path / "w"
    shutil.copytree(runs["root"] / "watched", run)
    res = render(run)
    names = {p.name for p in res["written"]}
    assert names == {"loss.png", "dials.png", "drift.png", "update_ratio.png", "histograms.png",
                     "spectra.png", "spectra.json", "movers.png", "dials.gif"}, res["skipped"]
    for p in res["written"]:
        assert p.stat().st_size > 1000, p
    with Image.open(run / "figures" / "dials.gif") as im:
        assert im.n_frames > 5
    spectra = json.loads((run / "figures" / "spectra.json").read_text())["rows"]
    assert {r["step"] for r in spectra} == {0, 1, 2, 4, 8, 16, 20}


def test_a_run_without_snapshots_renders_what_it_has(runs, tmp_path):
    from knobsim.watch.figures import render

    run = tmp_path / "s"
    shutil.copytree(runs["root"] / "sparse", run)
    res = render(run, gif=False)
    names = {p.name for p in res["written"]}
    assert {"dials.png", "drift.png", "update_ratio.png", "movers.png"} <= names
    assert "histograms.png" not in names and any("snapshots" in s for s in res["skipped"])


def test_a_run_killed_midway_keeps_its_records(runs, tmp_path):
    from knobsim.watch.figures import render

    run = tmp_path / "killed"
    shutil.copytree(runs["root"] / "watched", run)
    for name in ("summary.json", "params.npz"):
        (run / name).unlink()
    last = sorted((run / "watch").glob("steps_*.npz"))[-1]
    last.unlink()  # the chunk it was in when killed never got written
    (run / "watch" / ".steps_000017_000020.npz.tmp99.npz").write_bytes(b"PK\x03\x04 torn")
    (run / "snapshots" / "step_000020.npz").unlink()
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 21, "lo')
    rec = read_watch(run)
    assert rec.steps[-1] == 16 and list(rec.snapshots)[-1] == 16
    assert {p.name for p in render(run, gif=False)["written"]} >= {"drift.png", "histograms.png"}


@pytest.mark.parametrize("case", ["missing", "empty", "torn-config", "torn-index", "no-watch", "no-chunks"])
def test_watch_on_a_bad_run_is_one_line_exit_2(runs, tmp_path, case, cli):
    run = tmp_path / "r"
    if case == "missing":
        pass
    elif case == "empty":
        run.mkdir()
    elif case == "no-watch":
        shutil.copytree(runs["root"] / "plain", run)
    else:
        shutil.copytree(runs["root"] / "watched", run)
        if case == "torn-config":
            text = (run / "config.json").read_text()
            (run / "config.json").write_text(text[: len(text) // 2])
        elif case == "torn-index":
            text = (run / "watch" / "index.json").read_text()
            (run / "watch" / "index.json").write_text(text[: len(text) // 3])
        else:
            for p in (run / "watch").glob("steps_*.npz"):
                p.write_bytes(p.read_bytes()[:50])  # truncated copies
    # "no-chunks" in a real process; the other cases through the same main() in this one.
    r = (knobsim if case == "no-chunks" else cli)("watch", str(run))
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("knobsim watch: error:"), r.stderr
    assert "Traceback" not in r.stderr
    assert not (run / "figures").exists()


def test_tensorboard_event_files_read_back(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(runs["root"] / "watched" / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"loss", "eval_loss", "knobs/rel_drift", "rel_drift/blocks.0.mlp.w_in_DF"} <= set(tags["scalars"])
    assert "weights/blocks.0.attn.w_qkv_D3D" in tags["histograms"]
    rows = [r for r in read_metrics(runs["root"] / "watched") if "loss" in r]
    got = {e.step: e.value for e in acc.Scalars("loss")}
    assert sorted(got) == [r["step"] for r in rows]
    assert all(got[r["step"]] == pytest.approx(r["loss"], rel=1e-6) for r in rows)
    hist = acc.Histograms("weights/embed.tok_VD")
    assert hist[0].step == 0 and hist[0].histogram_value.num == 27 * runs["cfg"].model.shape["d_model"]


def test_live_view_renders_drift_bars_and_dials(runs):
    from rich.console import Console

    from knobsim.watch.live import LiveView

    reports = runs["reports"]  # from the watched run of the fixture, trained with on_chunk
    assert reports and all(r.watch is not None for r in reports)
    view = LiveView(runs["cfg"])
    for r in reports:
        view.update(r)
    console = Console(record=True, width=140)
    console.print(view)
    text = console.export_text()
    for needle in ("relative drift", "blocks.0.mlp.w_in_DF", "dial", "loss"):
        assert needle in text


@pytest.mark.slow
def test_train_cli_watches_by_default_and_no_watch_turns_it_off(tmp_path, cli):
    # The fixture's TINY config: in this process its programs are built already. `knobsim
    # watch` below is the real subprocess (test_cli runs `knobsim train` as one).
    common = ["--params", "2000", "--steps", "20", "--batch", "4", "--seq", "16", "--chunk", "5"]
    r = cli("train", *common, "--out", str(tmp_path / "w"), "--watch")
    assert r.returncode == 0, r.stderr
    assert "relative drift" in r.stdout and "knobs moved" in r.stdout
    assert (tmp_path / "w" / "watch" / "index.json").exists()
    assert (tmp_path / "w" / "snapshots" / "step_000008.npz").exists()
    r = cli("train", *common, "--out", str(tmp_path / "n"), "--no-watch", "-q")  # in-process
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "n" / "watch").exists() and not (tmp_path / "n" / "snapshots").exists()
    r = knobsim("watch", str(tmp_path / "w"), "--no-gif")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "w" / "figures" / "drift.png").exists()
    r = cli("train", *common, "--no-watch", "--watch-every", "3", cwd=tmp_path)
    assert r.returncode == 2 and "--no-watch" in r.stderr


def test_watching_needs_a_run_directory():
    with pytest.raises(KnobsimError, match="run directory"):
        T.train(plan_run(**TINY), watch=knobs.WatchConfig())
