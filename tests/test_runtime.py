"""knobsim.core.runtime: the huge-page re-exec and the persistent compilation cache."""

import json
import os
import subprocess
import sys

import pytest

from knobsim.core import runtime

PROBE = ("import os, sys, json; from knobsim.core import runtime; runtime.setup(); "
         "import jax; print(json.dumps({'pid': os.getpid(), 'tunables': os.environ.get('GLIBC_TUNABLES', ''), "
         "'argv': sys.argv[1:], 'cache': jax.config.jax_compilation_cache_dir}))")


def _probe(env_extra, *args):
    env = {k: v for k, v in os.environ.items()
           if k not in ("GLIBC_TUNABLES", "JAX_COMPILATION_CACHE_DIR", "KNOBSIM_HUGEPAGES")}
    env.update(env_extra)
    p = subprocess.Popen([sys.executable, "-c", PROBE, *args], env=env, stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0
    return p.pid, json.loads(out.strip().splitlines()[-1])


supported = runtime._glibc_version() is not None and runtime._glibc_version() >= (2, 35) and runtime._thp_available()


@pytest.mark.skipif(not supported, reason="needs glibc >= 2.35 and transparent huge pages")
def test_reexec_sets_the_tunable_keeps_pid_and_arguments(tmp_path):
    pid, got = _probe({"KNOBSIM_CACHE": str(tmp_path)}, "a b", "--c")
    assert "glibc.malloc.hugetlb=1" in got["tunables"]
    assert got["pid"] == pid  # exec, not a child process: signals and exit codes pass through
    assert got["argv"] == ["a b", "--c"]


def test_opt_outs(tmp_path):
    _, got = _probe({"KNOBSIM_HUGEPAGES": "0", "KNOBSIM_XLA_CACHE": "0", "KNOBSIM_CACHE": str(tmp_path)})
    assert got["tunables"] == ""
    assert got["cache"] is None


def test_user_tunables_are_kept(tmp_path):
    _, got = _probe({"GLIBC_TUNABLES": "glibc.malloc.check=0", "KNOBSIM_CACHE": str(tmp_path)})
    assert got["tunables"].startswith("glibc.malloc.check=0")


def test_compilation_cache_lives_in_knobsim_cache_and_user_dir_wins(tmp_path):
    _, got = _probe({"KNOBSIM_CACHE": str(tmp_path)})
    assert got["cache"] == str(tmp_path / "xla")
    _, got = _probe({"KNOBSIM_CACHE": str(tmp_path), "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "mine")})
    assert got["cache"] == str(tmp_path / "mine")


def test_hugepages_wanted_respects_environment(monkeypatch):
    monkeypatch.setenv("KNOBSIM_HUGEPAGES", "0")
    assert not runtime.hugepages_wanted()
    monkeypatch.delenv("KNOBSIM_HUGEPAGES")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")
    assert not runtime.hugepages_wanted()  # already on: never exec twice


@pytest.mark.slow
def test_cached_compilation_gives_the_same_bits(tmp_path):
    """Two `knobsim train` processes on one cache: the second loads the compiled programs
    (the cache folder fills on the first) and reports the very same losses."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env.update(KNOBSIM_CACHE=str(tmp_path / "cache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    outs = []
    for i in range(2):
        p = subprocess.run([sys.executable, "-m", "knobsim", "train", "--params", "3000", "--steps", "20",
                            "--batch", "4", "--seq", "16", "--no-watch", "-q", "--json", "--out",
                            str(tmp_path / f"run{i}")], env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        outs.append(json.loads(p.stdout))
        if i == 0:
            assert any((tmp_path / "cache" / "xla").iterdir())
    for k in ("final_eval_loss", "final_train_loss", "initial_eval_loss"):
        assert outs[0][k] == outs[1][k]
