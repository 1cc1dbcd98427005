"""Runs that survive: SIGKILL at random moments and exact resume, graceful stops,
divergence, overwriting. Kills and signals are real: those runs are subprocesses. The
refusals, the divergence and the resume of a finished run go through the same entry point,
knobsim.cli.main, in this process (the ``cli`` fixture of conftest.py)."""

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ENV = {**os.environ, "KNOBSIM_PEAK_FLOPS": "1e11", "PYTHONUNBUFFERED": "1"}
TINY = ["--params", "2k", "--steps", "48", "--batch", "4", "--seq", "16", "--chunk", "4",
        "--ckpt-every", "8", "--lr", "1e-2", "-q"]


def knobsim(*args, **kw):
    return subprocess.run([sys.executable, "-m", "knobsim", *args], capture_output=True,
                          text=True, env=ENV, timeout=600, **kw)


def start(*args):
    return subprocess.Popen([sys.executable, "-m", "knobsim", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def metric_rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def params(run):
    with np.load(run / "params.npz") as z:
        return {k: z[k] for k in z.files}


def _latest_checkpoint(run):
    d = run / "checkpoints"
    steps = [int(p.name) for p in d.iterdir() if p.name.isdigit()] if d.exists() else []
    return max(steps, default=-1)


def _wait_for_progress(run, proc, after, timeout=180):
    """Until a checkpoint newer than ``after`` appears (or the process ends)."""
    t0 = time.time()
    while time.time() - t0 < timeout and proc.poll() is None:
        if _latest_checkpoint(run) > after:
            return
        time.sleep(0.02)


def _train_killed(run, rng, kills_wanted: int) -> int:
    """`knobsim train TINY` into ``run``, SIGKILLed at up to ``kills_wanted`` random moments
    and resumed after each, until it finishes. Each kill comes after progress past the
    newest checkpoint, at a random moment: mid-chunk, mid-metrics-write or mid-checkpoint.
    Returns the kills that were resumed (a fast machine may finish before a kill lands)."""
    proc = start("train", *TINY, "--out", str(run))
    resumed = 0
    while True:
        _wait_for_progress(run, proc, _latest_checkpoint(run))
        time.sleep(rng.uniform(0.0, 0.4))
        killed = proc.poll() is None and resumed < kills_wanted
        if killed:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        if (run / "summary.json").exists():  # finished (a kill after the summary resumes nothing)
            return resumed
        assert killed and proc.returncode == -signal.SIGKILL, err
        resumed += 1
        proc = start("train", "--resume", str(run), "-q")


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    ref = tmp_path / "ref"
    ref_proc = start("train", *TINY, "--out", str(ref))  # the uninterrupted run, alongside

    # Three kills, each followed by a resume in a new process (more test nothing new and
    # cost seconds). Where a run finishes before all three land (a fast machine), the rest
    # go into a fresh run: every run is compared with the reference below.
    rng = random.Random(0)
    runs, resumed = [], 0
    while resumed < 3:
        assert len(runs) < 10, f"only {resumed} of 3 kills landed in 10 runs"
        runs.append(tmp_path / f"killed{len(runs)}")
        resumed += _train_killed(runs[-1], rng, 3 - resumed)
    _, err = ref_proc.communicate(timeout=600)
    assert ref_proc.returncode == 0, err
    a = params(ref)
    ra = sorted(p.name for p in (ref / "watch").iterdir())
    for run in runs:
        # Every metric and every knob is the same, bit for bit.
        assert metric_rows(run) == metric_rows(ref), run.name
        b = params(run)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
        # The knob records too (they are replayed from the checkpoint, not duplicated).
        assert ra == sorted(p.name for p in (run / "watch").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_graceful_stop_writes_a_checkpoint_and_prints_the_resume_command(tmp_path, sig, code, cli):
    run = tmp_path / "run"
    args = ["train", "--params", "2k", "--steps", "4000", "--batch", "4", "--seq", "16",
            "--chunk", "4", "--ckpt-every", "1000", "-q", "--out", str(run)]
    proc = start(*args)
    t0 = time.time()
    while not (run / "metrics.jsonl").exists() or len(metric_rows(run)) < 10:
        assert time.time() - t0 < 120 and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert f"knobsim train --resume {run}" in err
    assert "Traceback" not in err
    steps = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    last = max(r["step"] for r in metric_rows(run))
    assert steps and steps[-1] == last  # the checkpoint is where the metrics stop
    r = cli("train", "--resume", str(run), "--steps", "4000", "-q")
    # (--steps on resume is refused: the config is the run's own)
    assert r.returncode == 2


@pytest.mark.slow
def test_divergence_exits_3_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path, cli):
    run = tmp_path / "run"
    r = cli("train", "--params", "2k", "--steps", "200", "--batch", "4", "--seq", "16",
                "--chunk", "4", "--ckpt-every", "4", "--lr", "10", "--out", str(run), "-q")
    assert r.returncode == 3, (r.stdout, r.stderr)
    line = r.stderr.strip().splitlines()[-1]
    assert "diverged" in line and "step" in line and "--lr" in line
    steps = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    assert steps  # the last good one is there and loads
    from knobsim.io.checkpoint import Checkpointer
    assert Checkpointer(run).latest_step() == steps[-1]


def test_resume_of_a_missing_or_corrupt_run_is_one_line(tmp_path, cli):
    r = cli("train", "--resume", str(tmp_path / "nope"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{broken")
    r = cli("train", "--resume", str(bad))
    assert r.returncode == 2 and "corrupt" in r.stderr and "Traceback" not in r.stderr


def test_overwrite_is_needed_to_replace_a_run(tmp_path, cli):
    run = tmp_path / "run"
    args = ["train", "--params", "1k", "--steps", "2", "--batch", "2", "--seq", "8", "-q", "--out", str(run)]
    assert cli(*args).returncode == 0
    first = (run / "summary.json").read_text()
    r = cli(*args)
    assert r.returncode == 2 and (run / "summary.json").read_text() == first
    assert cli(*args, "--overwrite").returncode == 0


def test_resume_after_the_final_checkpoint_only_finishes_the_files(tmp_path):
    """A kill between the last checkpoint and summary.json: resuming trains nothing and
    writes the same summary and weights."""
    run = tmp_path / "run"
    assert knobsim("train", *TINY, "--out", str(run)).returncode == 0
    done = json.loads((run / "summary.json").read_text())
    before = params(run)
    (run / "summary.json").unlink()
    (run / "params.npz").unlink()
    seg = json.loads((run / "segments.json").read_text())
    assert seg["checkpoint_step"] == 48  # its losses were kept with its final checkpoint
    assert (seg["train_loss"], seg["eval_loss"]) == (done["final_train_loss"], done["final_eval_loss"])
    def resume_gives_the_same_run():
        r = knobsim("train", "--resume", str(run), "-q")  # a new process, as a user resumes
        assert r.returncode == 0, r.stderr
        again = json.loads((run / "summary.json").read_text())
        for k in ("final_eval_loss", "final_train_loss", "initial_eval_loss", "n_params_total"):
            assert again[k] == done[k], k
        for k, v in params(run).items():
            np.testing.assert_array_equal(v, before[k])
        # nothing trained or logged twice
        assert [r["step"] for r in metric_rows(run)] == list(range(49))

    resume_gives_the_same_run()
    # A run directory from before the losses were kept: the checkpoint before (step 40) is
    # restored and the last 8 steps replayed, to the same bits.
    (run / "segments.json").write_text(json.dumps({k: seg[k] for k in ("checkpoint_step", "segments")}))
    (run / "summary.json").unlink()
    (run / "params.npz").unlink()
    resume_gives_the_same_run()


def test_resume_says_where_it_resumes_and_its_summary_covers_every_segment(tmp_path, cli):
    """A run stopped at step 16 of 24 and resumed: the resume line names the step, and the
    summary's wall_s and tokens_per_s add up both segments, not just the last."""
    from knobsim.core import train as T
    from knobsim.core.plan import plan_run
    from knobsim.io.rundir import RunDir

    run = tmp_path / "run"
    cfg = plan_run(params=2000, steps=24, batch=2, seq=8, chunk=4, ckpt_every=4, lr=1e-2)

    def stop_soon(r):  # as Ctrl-C would: the next chunk saves a checkpoint and stops
        if r.step == 12:
            T.STOP["signal"] = signal.SIGINT

    with pytest.raises(T.Stopped):
        T.train(cfg, RunDir.create(run), on_chunk=stop_soon)
    T.STOP["signal"] = None
    r = cli("train", "--resume", run)
    assert r.returncode == 0, r.stderr
    assert f"resuming {run} at step 16 of 24" in r.stdout
    assert "over 2 segments" in r.stdout
    s = json.loads((run / "summary.json").read_text())
    segs = s["segments"]
    assert [(g["from_step"], g["to_step"]) for g in segs] == [(0, 16), (16, 24)]
    # Each segment's first chunk compiles and is left out of the throughput.
    per_step = 2 * 8
    assert [g["train_tokens"] for g in segs] == [(16 - 4) * per_step, (8 - 4) * per_step]
    assert s["wall_s"] == pytest.approx(sum(g["wall_s"] for g in segs))
    assert s["train_tokens"] == sum(g["train_tokens"] for g in segs)
    assert s["tokens_per_s"] == pytest.approx(s["train_tokens"] / sum(g["train_s"] for g in segs))


def test_the_library_resumes_a_stopped_run_bit_for_bit(tmp_path):
    """knobsim.load_run / knobsim.resume (what `knobsim train --resume` calls): a run
    stopped at step 12 of 24 and resumed in Python ends with the same weights and losses as
    one that ran through, and records what the stopped one recorded (its watch settings)."""
    import knobsim as ks
    from knobsim.core import train as T

    cfg = ks.plan_run(params=2000, steps=24, batch=2, seq=8, chunk=4, ckpt_every=4, lr=1e-2)
    whole = ks.train(cfg, ks.RunDir.create(tmp_path / "whole"), watch=ks.WatchConfig())

    def stop_soon(r):
        if r.step == 12:
            T.STOP["signal"] = signal.SIGINT

    run = tmp_path / "stopped"
    with pytest.raises(T.Stopped):
        ks.train(cfg, ks.RunDir.create(run), on_chunk=stop_soon, watch=ks.WatchConfig())
    T.STOP["signal"] = None
    loaded = ks.load_run(run)
    assert loaded.cfg == dataclasses.replace(cfg, watch=ks.WatchConfig()) and not loaded.finished
    assert loaded.watch == ks.WatchConfig()
    assert loaded.latest_checkpoint() == 16  # the chunk after the stop request saved it
    again = ks.resume(run)
    for k in ("final_eval_loss", "final_train_loss", "initial_eval_loss"):
        assert again[k] == whole[k], k
    for k, v in params(run).items():
        np.testing.assert_array_equal(v, params(tmp_path / "whole")[k])
    assert sorted(p.name for p in (run / "watch").iterdir()) == sorted(p.name for p in (tmp_path / "whole" / "watch").iterdir())
    assert ks.load_run(run).finished


def test_load_run_and_resume_say_what_is_wrong(tmp_path):
    import knobsim as ks
    from knobsim.errors import KnobsimError

    with pytest.raises(KnobsimError, match="no such run directory"):
        ks.load_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(KnobsimError, match="no config.json"):
        ks.load_run(tmp_path / "empty")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text('{"model": {}}')
    with pytest.raises(KnobsimError, match="not a knobsim run config"):
        ks.load_run(tmp_path / "odd")
    cfg = ks.plan_run(params=1000, steps=2, batch=2, seq=8, chunk=2)
    ks.train(cfg, ks.RunDir.create(tmp_path / "done"))
    with pytest.raises(KnobsimError, match="already finished"):
        ks.resume(tmp_path / "done")


def test_a_run_directory_of_the_old_form_loads_and_resumes(tmp_path):
    """config.json before issue 24: the RunConfig without watch, devices and finetune, and
    beside it loose ``watch`` (no ``tensorboard`` in it) and ``tensorboard`` keys; its
    segments.json kept no losses. It reads into the new RunConfig (TensorBoard inside the
    watch settings) and resumes to the same bits as a run that went through."""
    import knobsim as ks
    from knobsim.core import train as T

    cfg = ks.plan_run(params=2000, steps=24, batch=2, seq=8, chunk=4, ckpt_every=4, lr=1e-2)
    watch = ks.WatchConfig(every=2, tensorboard=True)
    whole = ks.train(cfg, ks.RunDir.create(tmp_path / "whole"), watch=watch)

    def stop_soon(r):
        if r.step == 12:
            T.STOP["signal"] = signal.SIGINT

    run = tmp_path / "old"
    with pytest.raises(T.Stopped):
        ks.train(cfg, ks.RunDir.create(run), on_chunk=stop_soon, watch=watch)
    T.STOP["signal"] = None
    new = json.loads((run / "config.json").read_text())
    old = {k: new[k] for k in ("language", "model", "optim", "train", "dtype")}
    old["watch"] = {k: v for k, v in new["watch"].items() if k != "tensorboard"}
    old["tensorboard"] = True
    (run / "config.json").write_text(json.dumps(old))
    seg = json.loads((run / "segments.json").read_text())
    (run / "segments.json").write_text(json.dumps({k: seg[k] for k in ("checkpoint_step", "segments")}))

    loaded = ks.load_run(run)
    assert loaded.cfg == dataclasses.replace(cfg, watch=watch)
    t0 = time.time()
    again = ks.resume(run)
    for k in ("final_eval_loss", "final_train_loss", "initial_eval_loss"):
        assert again[k] == whole[k], k
    for k, v in params(run).items():
        np.testing.assert_array_equal(v, params(tmp_path / "whole")[k])
    assert json.loads((run / "config.json").read_text()) == old  # a resume rewrites no config
    # TensorBoard goes on after the resume (it was the loose flag, now watch.tensorboard).
    assert any(p.stat().st_mtime >= t0 for p in (run / "tensorboard").iterdir())


def test_a_run_split_over_more_devices_than_this_process_has_says_how_to_resume(tmp_path, cli):
    """The library cannot make CPU devices once JAX has started: it names the two ways on."""
    import knobsim as ks
    from knobsim.errors import KnobsimError

    run = tmp_path / "run"
    args = ["train", "--params", "1k", "--steps", "4", "--batch", "2", "--seq", "8", "--chunk", "2",
            "--ckpt-every", "2", "-q", "--out", str(run)]
    assert cli(*args).returncode == 0
    (run / "summary.json").unlink()
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "devices": 2}))
    with pytest.raises(KnobsimError) as e:
        ks.resume(run)
    assert str(e.value) == (f"{run} was split over 2 devices (its config.json) but JAX sees 1; start "
                            "Python with XLA_FLAGS=--xla_force_host_platform_device_count=2 (or use "
                            "`knobsim train --resume`), or resume with devices=1 (the same run, other bits)")
    assert not (run / "summary.json").exists()
    assert ks.resume(run, devices=1)["devices"] == 1  # the way it names
