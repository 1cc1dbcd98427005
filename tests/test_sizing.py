"""Counts from shapes, pinned; the one counting path; budget -> shape tolerances."""

import numpy as np
import pytest

from knobsim.data.language import VOCAB
from knobsim.models import linear, mlp, transformer
from knobsim.models.counting import DecoderSpec, count_decoder
from knobsim.models.sizing import count_params, param_shapes, shape_for_budget
from knobsim.errors import KnobsimError

# Pinned: if a sizing rule changes on purpose, update these numbers (and the README).
PINNED = {
    ("transformer", 1_000): 1_002,
    ("transformer", 10_000): 9_962,
    ("transformer", 100_000): 99_935,
    ("transformer", 1_000_000): 1_000_212,
    ("linear", 200): 189,
    ("linear", 1_000): 999,
    ("mlp", 200_000): 199_983,
}


@pytest.mark.parametrize("arch,budget", sorted(PINNED))
def test_pinned_counts_equal_sum_of_leaf_sizes(arch, budget):
    shape = shape_for_budget(arch, budget, VOCAB, 128)
    c = count_params(arch, shape)
    leaves = param_shapes(arch, shape)
    assert c.total == sum(int(np.prod(s)) for s in leaves.values()) == PINNED[(arch, budget)]
    assert c.total == c.embedding + c.nonembedding
    assert sum(c.by_component.values()) == c.total
    fam = {"transformer": transformer, "linear": linear, "mlp": mlp}[arch]
    assert fam.count(shape) == c.total  # the closed form agrees with eval_shape


@pytest.mark.parametrize("budget", [1_000, 30_000, 1_000_000])
def test_transformer_counts_through_the_shared_decoder_counter(budget):
    shape = shape_for_budget("transformer", budget, VOCAB, 128)
    c = count_params("transformer", shape)
    ref = count_decoder(transformer.spec(shape))
    assert c.total == ref["total"]
    assert c.nonembedding == ref["nonembedding"]
    for comp in ("attn", "mlp", "norms", "token_embedding"):
        assert c.by_component[comp] == ref[comp], comp


def test_gpt2_small_through_the_same_counter():
    spec = DecoderSpec(vocab=50257, d_model=768, n_layer=12, n_head=12, d_ff=3072, context=1024)
    assert count_decoder(spec)["total"] == 124_439_808


def test_transformer_within_ten_percent_from_1e3_to_1e9():
    worst = 0.0
    for budget in np.logspace(3, 9, 181):
        b = int(budget)
        shape = shape_for_budget("transformer", b, VOCAB, 128)
        assert shape.d_model % shape.n_head == 0
        assert 2 * shape.d_model <= shape.d_ff <= 6 * shape.d_model
        worst = max(worst, abs(transformer.count(shape) - b) / b)
    assert worst < 0.10, worst


def test_eval_shape_at_1e9_allocates_nothing(monkeypatch):
    """Counting a 1e9-knob model (4 GB of float32) only traces its init. With jit disabled,
    any path that runs init (directly or under jit) hands it a concrete key, while
    jax.eval_shape still traces it with abstract values: init must only ever see those. No
    array outlives the count, and the process's peak memory does not grow by anything like
    the model's size (numpy buffers of the shapes would show there)."""
    import resource

    import jax

    real, keys = transformer.init, []

    def traced_only(key, shape):
        keys.append(key)
        assert isinstance(key, jax.core.Tracer), "init ran on a concrete key: it allocated the model"
        return real(key, shape)

    monkeypatch.setattr(transformer, "init", traced_only)
    shape = shape_for_budget("transformer", 10**9, VOCAB, 128)
    live = len(jax.live_arrays())
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with jax.disable_jit():
        c = count_params("transformer", shape)
    assert keys, "the count did not go through the family's init"
    assert abs(c.total - 1e9) / 1e9 < 0.1
    assert len(jax.live_arrays()) <= live
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_kib) * 1024
    assert grown < c.total, f"peak memory grew by {grown / 2**30:.1f} GiB while counting"


def test_linear_and_mlp_pick_the_nearest_shape():
    s = shape_for_budget("linear", 200, VOCAB, 128)
    assert linear.count(s) == 189  # rank 3; rank 4 would be 243
    s = shape_for_budget("mlp", 2e5, VOCAB, 128)
    assert abs(mlp.count(s) - 2e5) < 200


@pytest.mark.parametrize("arch,budget", [("linear", 20), ("mlp", 50), ("transformer", 100)])
def test_budget_below_the_smallest_model_is_refused(arch, budget):
    with pytest.raises(KnobsimError, match="below the smallest"):
        shape_for_budget(arch, budget, VOCAB, 128)


def test_unknown_arch_is_refused():
    with pytest.raises(KnobsimError, match="unknown --arch"):
        shape_for_budget("nope", 1000, VOCAB, 128)
