"""Sweeps on every core: XLA's thread count per process, the per-point threads rule, and
worker processes that train points side by side with the bits they have alone.

Runs are tiny (linear models of ~100-200 knobs); the point is which process trained what,
on how many threads, and that the bits do not depend on it but through the threads.
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from knobsim.core import runtime
from knobsim.errors import KnobsimError
from knobsim.scaling import sweep as S

TWO_CORES = pytest.mark.skipif(runtime.cores() < 2, reason="side by side needs 2 cores")


def _settings(**kw):
    return S.Settings(arch="linear", batch=2, seq=8, vmap="never", check_memory=False, **kw)


# -- XLA's threads -----------------------------------------------------------------------


def test_xla_threads_follow_xlas_own_rule(monkeypatch):
    monkeypatch.delenv("PJRT_NPROC", raising=False)
    monkeypatch.delenv("NPROC", raising=False)
    assert runtime.xla_threads() == runtime.cores() == len(runtime.core_ids())
    monkeypatch.setenv("NPROC", "3")
    assert runtime.xla_threads() == 3
    monkeypatch.setenv("PJRT_NPROC", "1")  # PJRT_NPROC before NPROC, as in XLA
    assert runtime.xla_threads() == 1
    assert runtime.xla_threads({"PJRT_NPROC": "x", "NPROC": "5"}) == 5  # not a number: skipped
    assert runtime.xla_threads({"PJRT_NPROC": "0"}) == 1
    assert runtime.xla_threads(runtime.thread_env(4)) == 4
    with pytest.raises(ValueError):
        runtime.set_xla_threads(0)


PROBE = ("import jax; jax.devices(); from knobsim.core import runtime; "
         "print(runtime.pool_threads(), runtime.xla_threads())")


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
@pytest.mark.parametrize("threads", [1, 3])
def test_a_process_computes_on_the_threads_its_environment_gives(threads):
    """Counted, not assumed: XLA:CPU's pool has PJRT_NPROC threads, whatever the cores."""
    env = {**os.environ, **runtime.thread_env(threads)}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(threads), str(threads)]


def test_threads_cannot_change_once_the_backend_runs():
    import jax

    jax.devices()
    other = runtime.xla_threads() + 1
    with pytest.raises(RuntimeError, match="before the first JAX computation"):
        runtime.set_xla_threads(other)


# -- the rule ----------------------------------------------------------------------------


def test_break_even_size_from_the_measured_ratios():
    assert S.one_thread_up_to(((1e3, 2.0), (1e5, 0.5))) == pytest.approx(10 ** (3 + 2 * 2 / 3))  # 2/3 of the way in log N
    assert S.one_thread_up_to(((1e3, 2.0), (1e4, 1.5))) == 1e4  # never crosses: the largest size
    assert S.one_thread_up_to(((1e3, 0.9), (1e4, 1.5))) == 0.0  # not even the smallest
    assert S.one_thread_up_to(((1e4, 1.5), (1e3, 2.0), (1e5, 1.0))) == 1e5  # sorted first
    assert S.one_thread_up_to(S.CORES_BREAK_EVEN) > 0


def test_a_points_threads_depend_on_its_size_and_the_cores_only(tmp_path):
    bench = tmp_path / "cores.json"
    bench.write_text(json.dumps({"ratios": [[100, 1.8], [1000, 0.6]]}))
    s = _settings(cores_bench=str(bench))
    up_to = S.one_thread_up_to(((100, 1.8), (1000, 0.6)))
    assert S.point_threads(int(up_to), s, 4) == 1 and S.point_threads(int(up_to) + 1, s, 4) == 4
    assert S.point_threads(50, s, 1) == 1  # one core: everything on it
    assert S.point_threads(10**6, _settings(threads="one"), 4) == 1
    assert S.point_threads(10, _settings(threads="all"), 4) == 4
    for jobs in (1, 2, 7):  # --jobs never changes a run's threads
        assert S.point_threads(150, _settings(cores_bench=str(bench), jobs=jobs), 2) == 1
    with pytest.raises(KnobsimError, match="--jobs"):
        S.validate_settings(_settings(jobs=0))
    with pytest.raises(KnobsimError, match="--threads"):
        S.validate_settings(_settings(threads="some"))
    bench.write_text("{}")
    with pytest.raises(KnobsimError, match="bench_sweep_cores.py"):
        S.point_threads(10, s, 2)


def _resumable_run(path, point):
    (path / "checkpoints" / "4").mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "metrics.jsonl").write_text("")
    if point is not None:
        (path / "point.json").write_text(json.dumps(point))


def test_a_killed_run_resumes_on_the_threads_it_started_on(tmp_path):
    from knobsim.scaling.sweep import _threads

    _resumable_run(tmp_path / "a", {"seed": 0, "threads": 1})
    assert _threads(tmp_path / "a", 10**7, _settings(threads="all"), 8) == 1
    _resumable_run(tmp_path / "b", {"seed": 0})  # before threads were recorded: this process's
    assert _threads(tmp_path / "b", 10, _settings(threads="one"), 8) == runtime.xla_threads()
    assert _threads(tmp_path / "c", 10, _settings(threads="one"), 8) == 1  # a new run


# -- worker processes --------------------------------------------------------------------

# Two sizes x two seeds: the small size under the break-even (one thread, in workers), the
# large one above it (all cores, in the sweep's process); 40 steps each.
POINTS = S.sweep_points([100, 200], 2, arch="linear", tokens=640, batch=2, seq=8)


def _bench(tmp_path_factory) -> str:
    from knobsim.core.plan import plan_run

    n = [plan_run(params=b, arch="linear", batch=2, seq=8, check_memory=False).model.n_params_total
         for b in (100, 200)]
    path = tmp_path_factory.mktemp("bench") / "cores.json"
    path.write_text(json.dumps({"ratios": [[n[0], 1.5], [n[1], 0.5]]}))
    return str(path)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """The same sweep with --jobs 1 (one worker, every run alone) and --jobs 2."""
    bench = _bench(tmp_path_factory)
    out = {}
    for jobs in (1, 2):
        out[jobs] = tmp_path_factory.mktemp(f"jobs{jobs}")
        S.run_sweep(POINTS, _settings(jobs=jobs, cores_bench=bench), out[jobs])
    return out


def _span(run) -> tuple[float, float]:
    """When a run started (point.json) and ended (summary.json)."""
    return (run / "point.json").stat().st_mtime, (run / "summary.json").stat().st_mtime


SAME = ("arch", "shape", "n_params_total", "tokens", "final_eval_loss", "final_train_loss",
        "lr", "seed", "budget", "lr_source", "steps", "n_seeds_together", "threads")


@TWO_CORES
def test_workers_give_the_table_and_bits_of_jobs_1(sweeps):
    one, two = (S.read_rows(sweeps[j] / "results.csv") for j in (1, 2))
    assert len(one) == len(two) == 4
    assert [{k: r[k] for k in SAME} for r in one] == [{k: r[k] for k in SAME} for r in two]
    assert [r["threads"] for r in one] == [1, 1, runtime.cores(), runtime.cores()]
    for r1, r2 in zip(one, two):
        a, b = np.load(os.path.join(r1["run_dir"], "params.npz")), np.load(os.path.join(r2["run_dir"], "params.npz"))
        assert sorted(a.files) == sorted(b.files)
        assert all(np.array_equal(a[k], b[k]) for k in a.files)  # the weights, bit for bit
        with open(os.path.join(r1["run_dir"], "metrics.jsonl")) as f1, \
                open(os.path.join(r2["run_dir"], "metrics.jsonl")) as f2:
            assert f1.read() == f2.read()  # every logged loss


@TWO_CORES
def test_a_point_trained_beside_another_has_the_bits_it_has_alone(sweeps):
    """With --jobs 2 the small size's two seeds trained at the same time, in two workers;
    with --jobs 1 each trained alone. Same weights, same losses (the test above)."""
    def small(out):
        return sorted(p for p in (out / "runs").iterdir() if "-N100-" in p.name)

    (a1, b1), (a2, b2) = small(sweeps[1]), small(sweeps[2])
    (s1, e1), (s2, e2) = _span(a2), _span(b2)
    assert s1 < e2 and s2 < e1  # side by side
    (s1, e1), (s2, e2) = _span(a1), _span(b1)
    assert e1 <= s2 or e2 <= s1  # one after the other
    for run in (a1, b1, a2, b2):
        assert json.loads((run / "point.json").read_text())["threads"] == 1


@TWO_CORES
def test_a_rerun_skips_what_workers_finished(sweeps, monkeypatch):
    from knobsim.scaling import workers

    def boom(*a, **k):
        raise AssertionError("a finished point was trained again")

    monkeypatch.setattr(workers, "_Worker", boom)
    monkeypatch.setattr(workers, "train_unit", boom)
    res = S.run_sweep(POINTS, _settings(jobs=2), sweeps[2])
    assert res.trained == 0 and res.skipped == 4


@TWO_CORES
def test_lr_tuning_runs_its_grid_in_workers(tmp_path):
    pts = S.sweep_points([100], 1, arch="linear", tokens=64, batch=2, seq=8)
    s = S.Settings(arch="linear", batch=2, seq=8, tune_lr=True, lr_grid=(0.1, 3.0),
                   check_memory=False, threads="one", jobs=2)
    res = S.run_sweep(pts, s, tmp_path)
    assert res.trained == 3
    grid = S.read_rows(tmp_path / "lr_tune.csv")
    (row,) = res.rows
    assert row["lr"] == pytest.approx(min(grid, key=lambda r: r["final_eval_loss"])["lr"])
    assert row["threads"] == 1 and row["lr_source"] == "tuned"


@TWO_CORES
def test_a_failing_run_in_a_worker_is_one_clear_error(tmp_path):
    pts = S.sweep_points([100], 2, arch="linear", tokens=64, batch=2, seq=8, lr=1e6)
    with pytest.raises(KnobsimError, match="diverged") as e:
        S.run_sweep(pts, _settings(threads="one", jobs=2), tmp_path)
    assert e.value.exit_code == 3 and "seed" in str(e.value)
    assert S.read_rows(tmp_path / "results.csv") == []


# -- stopping ----------------------------------------------------------------------------


def _tagged(tag: str) -> list[int]:
    """Processes whose environment holds this tag (the sweep and its workers)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"KNOBSIM_TEST_TAG={tag}".encode() in f.read():
                    pids.append(int(pid))
        except OSError:
            continue
    return pids


STOP_POINTS = dict(arch="linear", tokens=40000, batch=2, seq=8)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    pts = S.sweep_points([100, 200], 1, **STOP_POINTS)
    return S.run_sweep(pts, _settings(threads="one", jobs=2), tmp_path_factory.mktemp("ref")).rows


@TWO_CORES
@pytest.mark.slow
@pytest.mark.parametrize("sig,group", [(signal.SIGTERM, False), (signal.SIGINT, True)])
def test_a_stopped_sweep_stops_its_workers_and_resumes(tmp_path, sig, group, uninterrupted):
    """SIGTERM to `knobsim sweep`, or Ctrl-C (SIGINT to the terminal's process group; the
    workers have sessions of their own), while two workers train a run each: exit
    128+signal, every run in training checkpointed where it stopped, no process left,
    results.csv whole (or not yet written); the same command again trains the rest, resumed
    from those checkpoints, bit for bit."""
    tag = uuid.uuid4().hex
    out = tmp_path / "s"
    args = [sys.executable, "-m", "knobsim", "sweep", "--params", "100,200", "--seeds", "1",
            "--arch", "linear", "--tokens", str(STOP_POINTS["tokens"]), "--batch", "2", "--seq",
            "8", "--vmap", "never", "--threads", "one", "--jobs", "2", "--out", str(out), "-q"]
    env = {**os.environ, "KNOBSIM_PEAK_FLOPS": "1e11", "KNOBSIM_TEST_TAG": tag}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while not any((out / "runs").glob("*/metrics.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.2)  # until a worker has started training
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=200)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and "rerun" in err
    assert _tagged(tag) == []  # no worker left behind
    if (out / "results.csv").exists():
        S.read_rows(out / "results.csv")  # whole: it parses
    stopped = [p for p in (out / "runs").iterdir() if not (p / "summary.json").exists()]
    assert stopped
    for run in stopped:  # a clean stop: the last logged step is checkpointed
        last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"]
        assert S._resumable(run) and last > 0
        assert max(int(c.name) for c in (run / "checkpoints").iterdir() if c.name.isdigit()) == last
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    rows = S.read_rows(out / "results.csv")
    assert len(rows) == 2 and {r["threads"] for r in rows} == {1}
    assert [r["final_eval_loss"] for r in rows] == [r["final_eval_loss"] for r in uninterrupted]
