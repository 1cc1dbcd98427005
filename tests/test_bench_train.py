"""benchmarks/bench_train.py: --shape and --out (issue 23, item 4). Speed is never asserted."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench_train.py"


def _bench():
    sys.path.insert(0, str(BENCH.parent))
    try:
        import bench_train
    finally:
        sys.path.pop(0)
    return bench_train


def test_parse_shapes():
    b = _bench()
    assert b.parse_shapes("32x128,16x64") == [(32, 128), (16, 64)]
    assert b.parse_shapes(" 8X32 ") == [(8, 32)]
    for bad in ("16y64", "0x64", "16x", "x64", "-1x4"):
        with pytest.raises(ValueError, match="BATCHxSEQ"):
            b.parse_shapes(bad)


def test_isa_restriction_sets_each_library_once(monkeypatch):
    b = _bench()
    for k in b.ISA_ENV["avx2"]:  # set, then deleted: monkeypatch restores each as it was
        monkeypatch.setenv(k, "")
        monkeypatch.delenv(k)
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    assert b.restrict_isa(None)["ATEN_CPU_CAPABILITY"] is None  # no --isa: nothing set
    env = b.restrict_isa("avx2")
    env = b.restrict_isa("avx2")  # the re-exec'd process sets it again: no duplicate flag
    assert env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2 --xla_cpu_max_isa=AVX2"
    assert (env["ATEN_CPU_CAPABILITY"], env["MKL_ENABLE_INSTRUCTIONS"], env["ONEDNN_MAX_CPU_ISA"]) == \
        ("avx2", "AVX2", "AVX2")


def test_bad_shape_is_one_line_exit_2():
    r = subprocess.run([sys.executable, str(BENCH), "--shape", "16y64"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["error: --shape '16y64' is not BATCHxSEQ with positive integers, e.g. 16x64"]


@pytest.mark.slow
def test_writes_json_where_asked_one_row_per_size_and_shape(tmp_path):
    out = tmp_path / "deep" / "b.json"
    r = subprocess.run([sys.executable, str(BENCH), "--sizes", "300", "--repeats", "1", "--no-torch",
                        "--shape", "4x16,2x8", "--out", str(out)],
                       capture_output=True, text=True, env={**__import__("os").environ, "KNOBSIM_HUGEPAGES": "0"})
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(out.read_text())
    assert d["shapes"] == ["4x16", "2x8"]
    assert d["isa"] == "native" and d["kernel_env"]["ATEN_CPU_CAPABILITY"] is None
    assert [(row["batch"], row["seq"]) for row in d["rows"]] == [(4, 16), (2, 8)]
    from knobsim.core import parallel, runtime

    for row in d["rows"]:
        assert row["knobsim_tokens_per_s"] > 0 and 0 < row["mfu"] < 1
        # knobsim runs on the devices `knobsim train` gives it: one CPU device per core here
        assert row["knobsim_devices"] == parallel.cpu_split("transformer", 300, row["batch"], runtime.cores())
    assert " 4x16 " in r.stdout and " 2x8 " in r.stdout
