"""Sweeps on a Ray cluster: every point one Ray task, merged into the one results.csv.

    run_sweep_ray(points, settings, out, address=..., device=...)  -> SweepResult

The same sweep as knobsim.scaling.sweep.run_sweep, with the same directory (sweep.json,
results.csv, runs/<name>/, lr_tune/), the same run names and the same training code, so a
point gives the same bits on either backend (as the local backend's ``vmap="never"``:
here every point trains alone, in its own task). What differs is who trains:

* The driver (this process) plans every point first, so bad input fails before anything
  is written; then writes sweep.json, skips finished points and submits one task per
  unfinished point, needing one GPU (``device="gpu"``, or ``"auto"`` on a cluster that has
  GPUs) or as many CPUs as the point's XLA threads: the local backend's rule
  (points.point_threads, with the cores of the cluster's smallest node), so a point gets
  the same threads, and so the same bits, on either backend. Each task's process starts
  with XLA's pool of that size (PJRT_NPROC in the task's runtime_env: Ray keeps a process
  per environment). Ray runs as many at once as the cluster has room for: on one machine,
  one-thread points cores-many at a time, larger ones alone.
* Each task trains its point into DIR/runs/<name> (the directory must be on a filesystem
  the driver and every node share) and returns its final loss. As each task comes back
  the driver rebuilds results.csv from the run directories, atomically, and moves the
  progress bar on by the point's tokens.
* A worker killed mid-point (a lost node, the OOM killer, a preempted VM) is retried by
  Ray up to RETRIES times; the retry continues from the run's last checkpoint (or starts
  it over cleanly when there is none), bit for bit as `train --resume`. An exception in
  training (bad input, divergence) is not retried: it would fail again.
* A killed driver takes its tasks with it (Ray ends a job's tasks with its driver); a
  rerun of the same command skips every finished point and trains only the rest.

With ``settings.tune_lr`` the lr grid runs as tasks first, then the main points with the
tuned learning rates; ``tune_only`` runs only the grid. There are no shards: one driver
owns the sweep (for SLURM arrays, use the local backend's --shard).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import socket
import warnings
from collections.abc import Sequence
from pathlib import Path

from knobsim.config import LanguageConfig
from knobsim.core import runtime
from knobsim.core.hooks import STOP
from knobsim.errors import KnobsimError
from knobsim.io import rundir as record
from knobsim.scaling.points import (
    Point, Settings, _finished, _fresh_run_dir, _plan, plan_all, run_name, validate_settings,
)
from knobsim.scaling.progress import Reporter
from knobsim.scaling.results import build_table, write_table
from knobsim.scaling.sweep import (
    SweepResult, _check_points, _LRs, _main_todo, _resolve_tuning, _threads, _todo, _tuning_plan,
    _write_manifest,
)
from knobsim.scaling.workers import _check_stop

__all__ = ["DEVICES", "RETRIES", "import_ray", "run_sweep_ray"]

DEVICES = ("auto", "cpu", "gpu")
# Retries of a task whose worker died (system failures only; Ray's own default is 3).
# Each retry resumes from the run's last checkpoint, so a retry costs at most the steps
# since it (a quarter of the run by default: plan.py writes four checkpoints per run).
RETRIES = 3
# How often the driver wakes while it waits for tasks (seconds): keeps Ctrl-C responsive.
_POLL_S = 1.0
# How long the driver tries to reach a cluster's head before it gives up (seconds).
_CONNECT_S = 10.0
# How long a stopped driver waits for its cancelled tasks to be gone (seconds).
_CANCEL_WAIT_S = 30.0


def import_ray():
    """The ray module, or one clear line on how to install it."""
    try:
        import ray
    except ImportError:
        raise KnobsimError("--ray needs Ray: pip install 'knobsim[ray]'") from None
    return ray


# -- on a worker -------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _language(cfg: LanguageConfig):
    # A worker process runs many points of one sweep: build the language once (~0.1 s).
    from knobsim.data.language import build_language

    return build_language(cfg)


def _train_task(cfg, path: str, meta: dict) -> dict:
    """One point on a Ray worker, as the local backend trains a point alone: a killed
    earlier attempt with a checkpoint is resumed, any other leftover removed first."""
    from knobsim.core.train import train

    runtime.enable_compilation_cache()  # what the `knobsim` command does at start
    threads = meta.get("threads")
    if threads is not None:
        import jax

        jax.devices()  # the backend starts with the task's PJRT_NPROC
        if runtime.pool_threads() not in (None, threads):
            raise KnobsimError(f"a Ray worker computes on {runtime.pool_threads()} XLA threads, "
                               f"not the {threads} its run records")
    run_path = Path(path)
    if not _finished(run_path):  # else: a retry of an attempt that died after summary.json
        run, resume = _fresh_run_dir(run_path, allow_resume=True)
        record.write_json_atomic(run.path / "point.json", meta)
        train(cfg, run=run, lang=_language(cfg.language), resume=resume)
    summary = record.read_json(run_path / "summary.json")
    return {"loss": summary["final_eval_loss"], "node": socket.gethostname()}


# -- on the driver -----------------------------------------------------------------------


def _connect(ray, address: str | None, num_cpus: int | None, runtime_env: dict | None) -> bool:
    """Connect to a cluster (or start a local one); True when this call did, and so ends it.
    A connection the caller made already is used as it is, and left open."""
    if ray.is_initialized():
        return False
    # Worker output stays in Ray's logs (session_latest/logs), off the progress bar.
    quiet = dict(log_to_driver=False, logging_level=logging.WARNING, runtime_env=runtime_env)
    with warnings.catch_warnings():
        # JAX warns about any fork once it is loaded; Ray's fork is a fork+exec of its
        # own processes, which is safe.
        warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
        if address in (None, "local"):
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **quiet)
            return True
        _check_reachable(address)
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, TimeoutError) as e:
            msg = " ".join(str(e).split())[:200]
            raise KnobsimError(f"--ray {address}: cannot connect to a Ray cluster ({msg}); is one "
                               "running there (`ray status` on its head node)?") from None
    return True


def _check_reachable(address: str) -> None:
    """Fail in seconds on a head that does not answer: Ray itself retries for minutes."""
    if address == "auto":  # the cluster `ray start` runs on this machine: Ray finds it
        return
    client = address.startswith("ray://")
    host, _, port = address.removeprefix("ray://").partition(":")
    port = port.split("/")[0] or ("10001" if client else "6379")
    try:
        socket.create_connection((host, int(port)), timeout=_CONNECT_S).close()
    except (OSError, ValueError) as e:
        raise KnobsimError(f"--ray {address}: cannot reach {host}:{port} ({e}); give the head "
                           "node as HEAD:6379 or ray://HEAD:10001 (see `ray status` there)") from None


@dataclasses.dataclass(frozen=True)
class _Remote:
    """The task, and how to submit a point: one GPU, or its threads' CPUs and XLA threads.
    GPU tasks get a fresh worker process each (Ray's default for num_gpus), so JAX in it
    sees just the GPU Ray assigned."""

    fn: object
    on_gpu: bool
    env: dict  # env_vars every CPU task gets
    cores: int  # CPUs of the cluster's smallest node: the thread rule's "all cores"

    def submit(self, job: _Job):
        if self.on_gpu:
            return self.fn.remote(job.cfg, str(job.path), job.meta)
        env = {**self.env, **runtime.thread_env(job.meta["threads"])}
        return self.fn.options(num_cpus=job.meta["threads"],
                               runtime_env={"env_vars": env}).remote(job.cfg, str(job.path), job.meta)


def _remote(ray, device: str) -> _Remote:
    n_gpus = ray.cluster_resources().get("GPU", 0)
    if device == "gpu" and not n_gpus:
        raise KnobsimError("--ray-device gpu: the Ray cluster has no GPUs; "
                           "use --ray-device cpu (or auto)")
    opts = dict(num_cpus=1, max_retries=RETRIES, retry_exceptions=False)
    on_gpu = device == "gpu" or (device == "auto" and bool(n_gpus))
    if on_gpu:
        opts["num_gpus"] = 1
    # CPU points on a cluster with GPUs: keep JAX off the GPUs
    env = {"JAX_PLATFORMS": "cpu"} if n_gpus and not on_gpu else {}
    cpus = [n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    cores = max(1, int(min((c for c in cpus if c), default=1)))
    return _Remote(ray.remote(**opts)(_train_task), on_gpu, env, cores)


@dataclasses.dataclass(frozen=True)
class _Job:
    """One task: the planned run, its directory, and its point.json."""

    cfg: object  # RunConfig
    path: Path
    meta: dict


def _main_job(out: Path, p: Point, settings: Settings, lr_for: _LRs, remote: _Remote) -> _Job:
    lr, src = lr_for(p)
    cfg, path = _plan(p, settings, lr), out / "runs" / run_name(p, settings, lr)
    return _Job(cfg, path, {**dataclasses.asdict(p), "lr_source": src,
                            **_threads_meta(path, cfg, settings, remote)})


def _tune_job(out: Path, t, settings: Settings, remote: _Remote) -> _Job:
    path = out / "lr_tune" / t.name
    return _Job(t.cfg, path, {**dataclasses.asdict(t.point), "lr_source": "tune",
                              "lr_factor": t.factor, **_threads_meta(path, t.cfg, settings, remote)})


def _threads_meta(path: Path, cfg, settings: Settings, remote: _Remote) -> dict:
    if remote.on_gpu:
        return {}
    return {"threads": _threads(path, cfg.model.n_params_total, settings, remote.cores)}


def _result(ray, ref, job: _Job) -> dict:
    """A finished task's result; its failure as one line (a bug keeps its traceback)."""
    name = job.path.name
    try:
        res = ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = e.cause
        if isinstance(cause, KnobsimError):
            raise KnobsimError(f"{name}: {cause}", cause.exit_code) from None
        if isinstance(cause, ModuleNotFoundError) and "knobsim" in str(cause):
            raise KnobsimError(f"a Ray worker cannot import knobsim ({cause}); install the same "
                               "knobsim on every node (docs/scaling.md)") from None
        raise
    except ray.exceptions.RayError as e:
        raise KnobsimError(
            f"{name}: lost on the Ray cluster after {RETRIES} retries ({type(e).__name__}); "
            "rerun the same command to resume it", exit_code=1) from None
    if not _finished(job.path):
        raise KnobsimError(
            f"{name} finished on {res['node']}, but {job.path / 'summary.json'} is not here: "
            "the sweep directory must be on a filesystem the driver and every node share")
    return res


def _cancel(ray, refs: list) -> None:
    """Stop tasks still running (a stopped driver), and wait until they are gone, so that
    a rerun never trains a point beside a dying attempt of it."""
    for ref in refs:
        ray.cancel(ref, force=True)
    if refs:
        ray.wait(refs, num_returns=len(refs), timeout=_CANCEL_WAIT_S)


def _run_jobs(ray, remote, jobs: Sequence[_Job], rep: Reporter, after_each) -> int:
    """Submit every job, then merge them as they come back, in whatever order."""
    refs = {remote.submit(j): j for j in jobs}
    pending, n = list(refs), len(refs)
    rep.group(f"ray: {n} on the cluster")  # running or queued: Ray knows which
    try:
        while pending:
            _check_stop()  # the CLI's SIGINT/SIGTERM handler: stop (the finally cancels)
            done, pending = ray.wait(pending, num_returns=1, timeout=_POLL_S)
            for ref in done:
                job = refs[ref]
                res = _result(ray, ref, job)
                after_each()  # the table (or lr_tune.csv) now holds this run
                rep.group(f"ray: {len(pending)} on the cluster")
                rep.advance(job.cfg.train.tokens, res["loss"])
                rep.finished_run({})
    finally:
        _cancel(ray, pending)
    return n


def _check_request(settings: Settings, device: str) -> None:
    if device not in DEVICES:
        raise KnobsimError(f"--ray-device must be one of {', '.join(DEVICES)}, not {device!r}")
    if settings.jobs is not None:
        raise KnobsimError("--jobs sets the local backend's processes; with --ray the cluster runs "
                           "as many points as its CPUs allow: drop --jobs (or --ray)")
    if settings.vmap == "always":
        raise KnobsimError("--vmap always trains a size's seeds in one process; with --ray "
                           "every point is its own task: drop --vmap always (or --ray)")


def run_sweep_ray(
    points: Sequence[Point],
    settings: Settings,
    out: Path,
    *,
    address: str | None = None,
    device: str = "auto",
    reporter: Reporter | None = None,
    tune_only: bool = False,
    num_cpus: int | None = None,
    runtime_env: dict | None = None,
) -> SweepResult:
    """Train every point that is not finished as a Ray task; return the table.

    ``address``: None or "local" starts a local cluster (of ``num_cpus`` CPUs, default all)
    and ends it at the end; "auto", "HOST:6379" or "ray://HOST:10001" connects to a running
    one. A connection the caller made (``ray.init`` before this call) is used and left
    open. ``runtime_env`` is Ray's, for the job (e.g. ``{"pip": ["knobsim==0.1.0"]}``).
    """
    ray = import_ray()
    _check_request(settings, device)
    STOP["signal"] = None  # a stop left over from an earlier run in this process
    validate_settings(settings)
    out = Path(out)
    rep = reporter or Reporter()
    points = _check_points(points)
    plan_all(points, settings)  # bad input fails before anything is written
    plans = (_tuning_plan(points, settings, min(p.seed for p in points))
             if settings.tune_lr else {})
    started = _connect(ray, address, num_cpus, runtime_env)
    try:
        remote = _remote(ray, device)
        _write_manifest(out, settings, (0, 1), tune_only, points)
        return _sweep(ray, remote, out, points, settings, plans, rep, tune_only)
    finally:
        if started:
            ray.shutdown()


def _sweep(ray, remote, out, points, settings, plans, rep: Reporter, tune_only) -> SweepResult:
    todo = _todo(out, plans, (0, 1), tune_only, points, settings, rep)
    tune_todo, main_todo, lr_for, n_done = todo.tune, todo.main, todo.lr_for, todo.done
    try:
        trained = _run_jobs(ray, remote, [_tune_job(out, t, settings, remote) for t in tune_todo], rep,
                            lambda: _resolve_tuning(out, plans, settings, None))
        if tune_todo:
            lr_for.tuned = _resolve_tuning(out, plans, settings, rep)
            before = len(main_todo)  # with the tuned lrs known, some may be finished already
            main_todo, _ = _main_todo(out, [] if tune_only else points, settings, lr_for)
            n_done += before - len(main_todo)
        jobs = [_main_job(out, p, settings, lr_for, remote) for p in main_todo]
        trained += _run_jobs(ray, remote, jobs, rep, lambda: write_table(out))
    finally:
        rep.stop()
    rows = build_table(out)
    return SweepResult(write_table(out), trained, n_done, rows, dict(lr_for.tuned))
