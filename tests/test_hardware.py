import json

from knobsim.core import hardware
from knobsim import zoo


def test_peak_comes_from_the_override_in_tests():
    assert hardware.peak_flops() == 1e11


def test_only_a_float32_single_seed_one_machine_run_is_recorded():
    base = {"arch": "transformer", "n_params_total": 5_000, "mfu": 0.05, "tokens_per_s": 1e5,
            "dtype": "float32", "n_seeds_together": 1, "devices": 1, "backend": "gpu"}
    for bad in ({"dtype": "bfloat16"}, {"n_seeds_together": 3}, {"devices": 2}, {"tokens_per_s": float("nan")}):
        assert not hardware.record_run_mfu({**base, **bad})
        assert hardware.measured_mfu() is None
    # CPU devices share one machine's cores, whose peak the MFU is measured against.
    assert hardware.record_run_mfu({**base, "devices": 2, "backend": "cpu"})
    assert hardware.measured_mfu()["n_params"] == 5_000


def test_the_largest_trained_model_sets_the_zoos_mfu():
    assert zoo.throughput().mfu_source.startswith("assumed")
    hardware.record_mfu("transformer", 100_000, 0.07, 6e4)
    hardware.record_mfu("transformer", 1_000, 0.01, 9e5)  # smaller: ignored
    hardware.record_mfu("mlp", 10_000_000, 0.5, 1e3)  # not a transformer: ignored
    seen = hardware.measured_mfu()
    assert seen["n_params"] == 100_000 and seen["mfu"] == 0.07
    tp = zoo.throughput()
    assert tp.mfu == 0.07 and "measured" in tp.mfu_source and "100,000" in tp.mfu_source
    assert tp.flops == 0.07 * 1e11


def test_a_peak_measured_on_a_busy_machine_is_measured_again_when_it_is_idle(monkeypatch):
    monkeypatch.delenv("KNOBSIM_PEAK_FLOPS")
    state = {"busy": 0.9, "rate": 1.3e11, "measured": 0}

    def measure(repeats, dtype):
        state["measured"] += 1
        return {"peak_flops": state["rate"], "dtype": dtype}

    monkeypatch.setattr(hardware, "busy_share", lambda window=0.2: state["busy"])
    monkeypatch.setattr(hardware, "measure_peak_flops", measure)
    assert hardware.peak_flops() == 1.3e11  # a number now, even beside other work ...
    assert hardware.peak_flops() == 1.3e11 and state["measured"] == 1  # ... kept while still busy
    state.update(busy=0.05, rate=3.0e11)
    assert hardware.peak_flops() == 3.0e11 and state["measured"] == 2  # idle: measured again
    state.update(busy=0.0, rate=1.0e11)
    assert hardware.peak_flops() == 3.0e11 and state["measured"] == 2  # settled: never again
    cached = json.loads((hardware.cache_dir() / "peak.json").read_text())
    assert [e.get("busy") for e in cached.values()] == [None]


def test_busy_share_reads_the_whole_machine():
    share = hardware.busy_share(0.05)
    assert share is None or 0.0 <= share <= 1.0
