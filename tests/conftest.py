"""Shared test set-up: a fake peak (no timing in tests) and a private cache."""

import os

# Set before jax is imported anywhere: no measurement of the peak in tests, no writes to ~.
os.environ.setdefault("KNOBSIM_PEAK_FLOPS", "1e11")

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
