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
