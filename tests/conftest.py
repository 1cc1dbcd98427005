"""Shared test set-up: a fake peak (no timing in tests) and a private cache."""

import os

# Set before jax is imported anywhere: no measurement of the peak in tests, no writes to ~.
os.environ.setdefault("KNOBSIM_PEAK_FLOPS", "1e11")

# Many tests (and the CLI subprocesses they start, which inherit the environment) compile
# the same tiny programs: a compilation cache shared by the session turns most of those
# compiles into a file read. A fresh folder per session, so nothing stale is ever read;
# cached executables compute the same bits as freshly compiled ones.
# The process that makes the folder (pytest itself, not xdist's workers or the tests'
# children, which inherit it) removes it when the session ends: ~30 MB a run otherwise.
SESSION_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import tempfile

    SESSION_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="knobsim-jax-cache-")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

# OpenBLAS's helper threads spin for a while after every call (blas_thread_server: 5% of the
# suite's CPU time in `perf record -a`), taking the other xdist worker's core for problems far
# too small to gain from a second thread. One BLAS thread in the suite and its subprocesses;
# no test compares a BLAS result with one made on another thread count.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# No huge-page re-exec in the suite's processes (knobsim.core.runtime): every CLI and
# experiment subprocess would start Python twice (~0.5 s each) to speed up page faults
# that models this small barely take. test_runtime tests the re-exec with it unset.
os.environ.setdefault("KNOBSIM_HUGEPAGES", "0")

# The suite's programs are tiny and run for a few steps: compiling them is most of its
# time. Two XLA flags cut it without changing which programs run:
# - backend optimisation level 0: XLA still runs all its HLO passes (fusion, layout,
#   scheduling: the same programs), only LLVM tunes the machine code less; a tiny
#   experiment's run drops from 23.8 s to 17.1 s.
# - xla_cpu_use_fusion_emitters=false: XLA:CPU emits its fusions with its older LLVM IR
#   emitters instead of the MLIR ones (MLIR's pattern rewriting and uniquing top the
#   compiler's symbols in `perf record -a` of the suite): a tiny `knobsim train` (2k
#   knobs, 30 steps, uncached) takes 5.7 s of CPU instead of 8.7, same eval loss to 4 digits.
# Assertions compare runs made under the same flags, so nothing tested depends on them;
# the runs of the test that compares two different programs bit for bit (a watched run
# against a plain one; they differ in the last bit of the gradient norm under these flags)
# are trained in a child process under XLA's defaults (default_xla_env below, used by
# tests/test_watch.py). `make run`, the experiments and the benchmarks use the defaults.
# KNOBSIM_TEST_FAST_COMPILE=0 keeps the defaults here too. Subprocesses inherit the flags.
#
# XLA_FLAGS as the suite was started, for default_xla_env to restore, kept in the
# environment: xdist's workers (and their children) inherit XLA_FLAGS with the flags added.
os.environ.setdefault("KNOBSIM_TEST_USER_XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
FAST_COMPILE = os.environ.get("KNOBSIM_TEST_FAST_COMPILE", "1") == "1"
if FAST_COMPILE:
    for _flag in ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false"):
        if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

import jax  # noqa: E402
import pytest  # noqa: E402

# Start JAX's backend now, with the devices this environment gives it. `knobsim train` asks
# for one CPU device per core when it runs before the backend starts (parallel.cpu_split); in
# this process that would depend on which test came first. Tests that run it in a child
# process get it, as a user does.
jax.devices()

# Strict dtype promotion would be nice (equinox does it), but optax's schedules promote
# their int step count to float internally, so it cannot be switched on here.

# The slowest test files, slowest first (`pytest --durations`, summed per file). `make test`
# runs `-n 2 --dist loadfile`: each file goes whole to one worker, handed out in collection
# order. Started first, the long files run side by side and the short ones fill in after;
# left to xdist's default order (most tests first) a long file with few tests starts last
# and one worker finishes minutes before the other. Only an order: a file missing here or
# a stale rank costs balance, never a test.
SLOW_FILES_FIRST = [
    "test_experiments.py",
    "test_resume.py",
    "test_experiments_isoflop_data.py",
    "test_parallel.py",
    "test_knobs.py",
    "test_watch.py",
    "test_sweep.py",
    "test_sweep_workers.py",
    "test_sweep_ray.py",
    "test_cli.py",
    "test_train.py",
    "test_scaling.py",
    "test_finetune.py",
    "test_dtype.py",
    "test_runtime.py",
    "test_zoo.py",
    "test_models.py",
    "test_checkpoint.py",
]


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # xdist >= 3.6: keep our order of files
        config.option.loadscopereorder = False


def pytest_unconfigure(config):
    if SESSION_CACHE is not None:
        import shutil

        shutil.rmtree(SESSION_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def default_xla_env() -> dict:
    """This environment with XLA's default flags, as users run, for a child process that
    must compile as they do (tests/test_watch.py: a watched run has a plain run's bits
    there, but not under the fast-compile flags above, where the two programs round the
    gradient norm differently)."""
    return {**os.environ, "KNOBSIM_TEST_FAST_COMPILE": "0",
            "XLA_FLAGS": os.environ["KNOBSIM_TEST_USER_XLA_FLAGS"]}


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: tests keep their order


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KNOBSIM_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def key():
    return jax.random.key(0)


class CliResult:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys, monkeypatch):
    """``knobsim ...`` in this process: ``knobsim.cli.main([...])``, the very entry point
    the console script calls (its one-line error handling included), without the seconds a
    new Python process spends importing JAX. Returns what a subprocess would: the exit code,
    stdout and stderr. An exception other than SystemExit escapes and fails the test, so a
    test that passes saw no traceback. Each command keeps one real-subprocess test too."""
    from knobsim.cli import main

    def run(*args, cwd=None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run
