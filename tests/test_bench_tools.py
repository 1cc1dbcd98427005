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


def test_a_fusion_holding_a_dot_is_that_dot_not_its_reduce():
    """XLA:CPU fuses the attention backward's dP = dO V^T with the softmax backward's row sum;
    the fusion carries the reduce's op_name but its time is the batched matmul's."""
    p = _import("profile_step")
    text = (
        "%fused_computation.107 (param_0: f32[], param_1: f32[32,4,128,32]) -> f32[32,4,128,128] {\n"
        '  %dot.625 = f32[32,4,128,128]{3,2,1,0} dot(%param_1, %param_1), lhs_batch_dims={0,1}, '
        'metadata={op_name="jit(chunk)/transpose(jvp(bhts,bshk->bthk))/dot_general" stack_frame_id=660}\n'
        '  %reduce_sum.1 = f32[32,4,128]{2,1,0} reduce(%dot.625, %param_0), dimensions={3}, '
        'metadata={op_name="jit(chunk)/transpose(jvp())/reduce_sum" stack_frame_id=659}\n'
        '  ROOT %mul.2 = f32[32,4,128,128]{3,2,1,0} multiply(%dot.625, %dot.625), '
        'metadata={op_name="jit(chunk)/transpose(jvp())/mul" stack_frame_id=659}\n'
        "}\n\n"
        "%fused_computation.9 (param_0: f32[32,128,128]) -> f32[32,128] {\n"
        '  ROOT %reduce_sum.3 = f32[32,128]{1,0} reduce(%param_0, %c), dimensions={2}, '
        'metadata={op_name="jit(chunk)/jvp()/reduce_sum" stack_frame_id=7}\n'
        "}\n\n"
        "ENTRY %main {\n"
        "  %ynn_fusion.107 = f32[32,4,128,128]{3,2,1,0} fusion(%a, %b), kind=kCustom, "
        'calls=%fused_computation.107, metadata={op_name="jit(chunk)/transpose(jvp())/reduce_sum" '
        "stack_frame_id=659}\n"
        "  %reduce_fusion.9 = f32[32,128]{1,0} fusion(%x), kind=kLoop, calls=%fused_computation.9, "
        'metadata={op_name="jit(chunk)/jvp()/reduce_sum" stack_frame_id=7}\n'
        "}\n")
    idx = p.hlo_index(text)
    shape, op, opcode = idx["ynn_fusion.107"]
    assert opcode == "dot" and op.startswith("jit(chunk)/transpose(jvp(bhts,bshk->bthk))/dot_general")
    assert op.endswith("+ fused reduce_sum")
    assert p.classify("ynn_fusion.107", op, opcode) == "attention matmuls"
    assert p.classify("reduce_fusion.9", *idx["reduce_fusion.9"][1:]) == "reductions"  # no dot: stays


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
    # The suite's fast-compile XLA flags stay (bench_threads adds its device count to them):
    # what is tested is the threads and devices each configuration ran with, not its speed.
    # Under XLA's defaults the two children took 22 s of CPU; 12 s under the suite's flags.
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
