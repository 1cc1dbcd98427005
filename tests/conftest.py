"""Shared test set-up: a fake peak (no timing in tests) and a private cache."""

import os

# Set before jax is imported anywhere: no measurement of the peak in tests, no writes to ~.
os.environ.setdefault("KNOBSIM_PEAK_FLOPS", "1e11")

# Many tests (and the CLI subprocesses they start, which inherit the environment) compile
# the same tiny programs: a compilation cache shared by the session turns most of those
# compiles into a file read. A fresh folder per session, so nothing stale is ever read;
# cached executables compute the same bits as freshly compiled ones.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="knobsim-jax-cache-")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402
import pytest  # noqa: E402

# Strict dtype promotion would be nice (equinox does it), but optax's schedules promote
# their int step count to float internally, so it cannot be switched on here.


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KNOBSIM_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def key():
    return jax.random.key(0)
