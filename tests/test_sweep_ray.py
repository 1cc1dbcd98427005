"""The Ray backend of sweeps, on a local Ray cluster of 2 CPUs started once for the module.

Runs are tiny (linear models of ~100 knobs, 8 steps of 2 x 8 tokens): what is tested is
that Ray trains the same bits as the local backend, resumes, retries a killed worker and
survives a killed driver, not the learning.
"""

import os
import shutil
import subprocess
import sys

import pytest

ray = pytest.importorskip("ray")

from knobsim.cli import main  # noqa: E402
from knobsim.errors import KnobsimError  # noqa: E402
from knobsim.scaling import ray_sweep as R  # noqa: E402
from knobsim.scaling import sweep as S  # noqa: E402

TINY = dict(arch="linear", tokens=128, batch=2, seq=8)
SETTINGS = S.Settings(arch="linear", batch=2, seq=8, vmap="never", check_memory=False)

# Ray starts its processes with subprocess (fork, then exec at once), which trips JAX's
# at-fork warning about forking a multithreaded process; an exec'd child runs no JAX code.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")


def _points(budgets=(100, 200), seeds=2):
    return S.sweep_points(list(budgets), seeds, **TINY)


def _losses(rows) -> dict:
    return {(r["budget"], r["seed"]): r["final_eval_loss"] for r in rows}


def _worker_setup(control: str):
    """A worker_process_setup_hook (pickled by value: it is a local function) that wraps
    train in every Ray worker: it logs each call to CONTROL/calls, and the first attempt
    at a budget armed by a file CONTROL/die-<budget> kills its worker process halfway."""

    def setup():
        import os

        from knobsim.core import train as T

        real = T.train

        def train(cfg, run=None, on_chunk=None, lang=None, resume=False, **kw):
            arm = os.path.join(control, f"die-{cfg.model.budget}")
            with open(os.path.join(control, "calls"), "a") as f:
                f.write(f"{cfg.model.budget} {cfg.train.seed} {resume}\n")
            try:
                os.rename(arm, arm + ".fired")  # atomic: only one attempt claims it
            except OSError:
                return real(cfg, run=run, on_chunk=on_chunk, lang=lang, resume=resume, **kw)

            def die(r):
                if r.tokens >= cfg.train.tokens // 2:
                    os._exit(1)  # no cleanup, no exception: as the OOM killer or a lost node

            return real(cfg, run=run, on_chunk=die, lang=lang, resume=resume, **kw)

        T.train = train

    return setup


@pytest.fixture(scope="module")
def control(tmp_path_factory):
    return tmp_path_factory.mktemp("ray-control")


@pytest.fixture(scope="module", autouse=True)
def cluster(control):
    assert not ray.is_initialized()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": _worker_setup(str(control))})
    yield
    ray.shutdown()


def _calls(control, budget=None) -> list[str]:
    path = control / "calls"
    lines = path.read_text().splitlines() if path.exists() else []
    return [c for c in lines if budget is None or c.startswith(f"{budget} ")]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The reference: the local backend on the same points."""
    return S.run_sweep(_points(), SETTINGS, tmp_path_factory.mktemp("local"))


@pytest.fixture(scope="module")
def on_ray(tmp_path_factory):
    out = tmp_path_factory.mktemp("ray")
    return out, R.run_sweep_ray(_points(), SETTINGS, out)


# -- a sweep on Ray ----------------------------------------------------------------------


def test_ray_sweep_gives_the_local_backends_table(local, on_ray):
    out, res = on_ray
    assert res.trained == 4 and res.skipped == 0
    rows = S.read_rows(out / "results.csv")
    assert len(rows) == 4 and res.table == out / "results.csv"
    ref = S.read_rows(local.table)
    same = ("arch", "shape", "n_params_total", "tokens", "compute", "final_eval_loss",
            "final_train_loss", "entropy_floor", "lr", "seed", "budget", "lr_source", "steps",
            "n_seeds_together", "threads")
    assert [{k: r[k] for k in same} for r in rows] == [{k: r[k] for k in same} for r in ref]
    assert [os.path.basename(r["run_dir"]) for r in rows] == [
        os.path.basename(r["run_dir"]) for r in ref]  # the same run names
    assert {r["threads"] for r in rows} == {1}  # the local rule: one thread this small
    assert (out / "sweep.json").is_file()
    assert ray.is_initialized()  # a cluster the caller started is left running


def test_rerun_on_ray_skips_finished_points(on_ray, control):
    out, _ = on_ray
    stamps = {p.name: (p / "summary.json").stat().st_mtime_ns for p in (out / "runs").iterdir()}
    n_calls = len(_calls(control))
    res = R.run_sweep_ray(_points(), SETTINGS, out)
    assert res.trained == 0 and res.skipped == 4 and len(res.rows) == 4
    assert len(_calls(control)) == n_calls  # no task trained anything
    assert stamps == {p.name: (p / "summary.json").stat().st_mtime_ns
                      for p in (out / "runs").iterdir()}


def test_a_worker_killed_mid_point_is_retried_and_resumes(tmp_path, control, local):
    pts = _points(budgets=(200,), seeds=1)
    (control / "die-200").touch()
    res = R.run_sweep_ray(pts, SETTINGS, tmp_path)
    assert (control / "die-200.fired").exists()  # the first attempt did die
    # Killed halfway, after a checkpoint: Ray ran the task again, and it resumed.
    assert _calls(control, 200)[-2:] == ["200 0 False", "200 0 True"]
    assert res.trained == 1 and len(res.rows) == 1
    assert _losses(res.rows)[(200, 0)] == _losses(local.rows)[(200, 0)]  # bit for bit


class _DriverKilledAfterFirstPoint(S.Reporter):
    def finished_run(self, row):
        raise KeyboardInterrupt  # as Ctrl-C while the first point's row is merged


@pytest.mark.slow
def test_a_killed_driver_keeps_finished_points_and_a_rerun_trains_the_rest(tmp_path, local):
    with pytest.raises(KeyboardInterrupt):
        R.run_sweep_ray(_points(), SETTINGS, tmp_path, reporter=_DriverKilledAfterFirstPoint())
    first = S.read_rows(tmp_path / "results.csv")
    assert len(first) >= 1  # the finished point's row was written before the stop
    finished = {p.name for p in (tmp_path / "runs").iterdir() if (p / "summary.json").exists()}
    stamps = {n: (tmp_path / "runs" / n / "summary.json").stat().st_mtime_ns for n in finished}
    res = R.run_sweep_ray(_points(), SETTINGS, tmp_path)
    assert res.skipped == len(finished) and res.trained == 4 - len(finished) >= 1
    assert stamps == {n: (tmp_path / "runs" / n / "summary.json").stat().st_mtime_ns
                      for n in finished}  # finished points were not trained again
    assert _losses(res.rows) == _losses(local.rows)


@pytest.mark.slow
def test_tune_lr_runs_the_grid_as_tasks_first(tmp_path):
    settings = S.Settings(arch="linear", batch=2, seq=8, tune_lr=True, lr_grid=(0.1, 3.0),
                          check_memory=False)
    res = R.run_sweep_ray(_points(budgets=(100,), seeds=1), settings, tmp_path)
    assert res.trained == 3  # two tuning runs and the run itself
    grid = S.read_rows(tmp_path / "lr_tune.csv")
    best = min(grid, key=lambda r: r["final_eval_loss"])
    (row,) = res.rows
    assert row["lr_source"] == "tuned" and row["lr"] == pytest.approx(best["lr"])


def test_bad_requests_fail_before_anything_is_written(tmp_path, monkeypatch):
    with pytest.raises(KnobsimError, match="no GPUs"):
        R.run_sweep_ray(_points(), SETTINGS, tmp_path / "a", device="gpu")
    with pytest.raises(KnobsimError, match="--ray-device"):
        R.run_sweep_ray(_points(), SETTINGS, tmp_path / "a", device="tpu")
    with pytest.raises(KnobsimError, match="below the smallest"):
        R.run_sweep_ray(S.sweep_points([5], 1, **TINY), SETTINGS, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    with pytest.raises(KnobsimError, match="cannot reach 127.0.0.1:1 "):
        R._check_reachable("127.0.0.1:1")  # an address nobody answers: seconds, not minutes
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(KnobsimError, match=r"pip install 'knobsim\[ray\]'"):
        R.import_ray()


# -- the command line --------------------------------------------------------------------


def _knobsim(capsys, *args) -> tuple[int, str, str]:
    """`knobsim ARGS` in this process (so it finds the module's cluster): (code, out, err)."""
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out, err = capsys.readouterr()
    return e.value.code, out, err


ARGS = ["sweep", "--params", "100,200", "--seeds", "1", "--arch", "linear", "--tokens", "128",
        "--batch", "2", "--seq", "8", "-q"]


def test_cli_sweep_on_ray(tmp_path, capsys, local):
    code, out, err = _knobsim(capsys, *ARGS, "--ray", "--out", str(tmp_path / "s"))
    assert code == 0, err
    assert "trained 2, already finished 0" in out and "knobsim fit --csv" in out
    rows = S.read_rows(tmp_path / "s" / "results.csv")
    ref = {k: v for k, v in _losses(local.rows).items() if k[1] == 0}
    assert _losses(rows) == ref
    code, out, err = _knobsim(capsys, *ARGS, "--out", str(tmp_path / "s"), "--ray")
    assert code == 0 and "trained 0, already finished 2" in out


@pytest.mark.slow
def test_cli_ray_alone_starts_and_ends_a_local_cluster(on_ray, tmp_path):
    """A process of its own (its own cluster beside the module's): --ray alone starts a
    local cluster, finds the sweep finished, and shuts the cluster down again."""
    out, _ = on_ray
    shutil.copytree(out, tmp_path / "s")
    args = [a if a != "1" else "2" for a in ARGS]  # the module's sweep: 2 seeds
    r = subprocess.run([sys.executable, "-m", "knobsim", *args, "--out", str(tmp_path / "s"),
                        "--ray"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "KNOBSIM_PEAK_FLOPS": "1e11"})
    assert r.returncode == 0, r.stderr
    assert "trained 0, already finished 4" in r.stdout and "Traceback" not in r.stderr


@pytest.mark.parametrize("extra,needle", [
    (["--ray", "--shard", "0/2"], "not both"),
    (["--shard", "0/2", "--ray", "local"], "not both"),
    (["--ray-device", "gpu"], "--ray-device needs --ray"),
    (["--ray", "--ray-device", "gpu"], "no GPUs"),
    (["--ray", "--vmap", "always"], "drop --vmap always"),
    (["--ray", "--jobs", "2"], "drop --jobs"),
    (["--ray-device", "tpu", "--ray"], "--ray-device"),
])
def test_cli_bad_ray_input_is_one_line_exit_2(tmp_path, capsys, extra, needle):
    code, out, err = _knobsim(capsys, *ARGS, "--out", str(tmp_path / "s"), *extra)
    assert code == 2, err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_cli_without_ray_installed_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    code, out, err = _knobsim(capsys, *ARGS, "--ray", "--out", str(tmp_path / "s"))
    assert code == 2 and err.strip() == "knobsim sweep: error: --ray needs Ray: pip install 'knobsim[ray]'"
    assert not (tmp_path / "s").exists()
