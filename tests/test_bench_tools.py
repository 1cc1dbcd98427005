"""benchmarks/profile_step.py's bins and benchmarks/bench_threads.py's configurations
(issue 23, item 3). Speed is never asserted: what is checked is that each measurement
measures what it says (the threads and devices a configuration ran with, the bin an op
lands in)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _import(name):
    sys.path.insert(0, str(BENCH))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def test_a_dot_is_a_matmul_whatever_its_op_name_ends_with():
    p = _import("profile_step")
    # A backward dot that absorbed a transpose carries the transpose's op_name.
    op = "jit(chunk)/while/body/closed_call/transpose(jvp(bhts,bshk->bthk))/transpose"
    assert p.classify("dot.327", op, "dot") == "attention matmuls"
    assert p.classify("transpose.3", op, "transpose") == "layout copies"
    assert p.classify("dot.1", "jit(chunk)/transpose(jvp())/dot_general", "dot") == "dense matmuls"


def test_hlo_index_reads_shape_op_name_and_opcode():
    p = _import("profile_step")
    text = ('  %dot.327 = f32[32,128,10]{2,1,0} dot(%a, %b), lhs_batch_dims={0}, '
            'metadata={op_name="jit(chunk)/transpose(jvp(bts,bsk->btk))/transpose" stack_frame_id=650}\n')
    assert p.hlo_index(text) == {"dot.327": ("f32[32,128,10]{2,1,0}",
                                             "jit(chunk)/transpose(jvp(bts,bsk->btk))/transpose", "dot")}


def test_torch_ops_land_in_the_same_bins():
    p = _import("profile_step")
    assert p.torch_bin("aten::addmm") == "dense matmuls"
    assert p.torch_bin("aten::_scaled_dot_product_flash_attention_for_cpu_backward") == "attention matmuls"
    assert p.torch_bin("aten::native_layer_norm_backward") == "reductions"
    assert p.torch_bin("aten::gelu_backward") == "elementwise"
    assert p.torch_bin("aten::_foreach_lerp_") == "elementwise"
    assert p.torch_bin("aten::copy_") == "layout copies"
    assert p.torch_bin("Optimizer.step#AdamW.step") == "other"
    assert set(p.TORCH_BINS) <= set(p.BINS)


def test_child_env_sets_threads_and_devices_and_drops_inherited_ones(monkeypatch):
    t = _import("bench_threads")
    monkeypatch.setenv("PJRT_NPROC", "7")
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    one = t.child_env("knobsim-1t", 2)
    assert one["PJRT_NPROC"] == "1" and one["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false"
    assert "PJRT_NPROC" not in t.child_env("knobsim-Ct", 2)
    dev = t.child_env("knobsim-Cd", 3)
    assert dev["XLA_FLAGS"].split() == ["--xla_cpu_enable_fast_math=false", "--xla_force_host_platform_device_count=3"]
    assert "PJRT_NPROC" not in dev


def test_unknown_config_is_one_line_exit_2():
    r = subprocess.run([sys.executable, str(BENCH / "bench_threads.py"), "--configs", "knobsim-9t"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: --configs: unknown knobsim-9t; choose from knobsim-1t, knobsim-Ct, knobsim-Cd, torch-1t, torch-Ct"]


@pytest.mark.slow
def test_each_configuration_runs_with_the_threads_and_devices_it_names(tmp_path):
    out = tmp_path / "t.json"
    env = {**os.environ, "KNOBSIM_HUGEPAGES": "0"}
    env.pop("XLA_FLAGS", None)
    r = subprocess.run([sys.executable, str(BENCH / "bench_threads.py"), "--sizes", "300", "--shape", "4x16",
                        "--repeats", "1", "--configs", "knobsim-1t,knobsim-Cd", "--out", str(out)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(out.read_text())
    cores = d["cores"]
    (row,) = d["rows"]
    assert row["ran_with"]["knobsim-1t"] == {"threads": 1, "devices": 1}
    assert row["ran_with"]["knobsim-Cd"]["devices"] == cores
    assert row["ran_with"]["knobsim-Cd"]["threads"] == cores  # the default pool, shared by the devices
    assert row["knobsim-1t"] > 0 and row["knobsim-Cd"] > 0 and "knobsim_speedup" not in row
