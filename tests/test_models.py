import jax
import jax.numpy as jnp
import numpy as np
import pytest

from knobsim.data.language import VOCAB
from knobsim.models import FAMILIES
from knobsim.models.sizing import shape_for_budget

CASES = [("linear", 200), ("linear", 3000), ("mlp", 5000), ("transformer", 5000)]


def _jitted(fam, shape):
    """init and apply compiled once each, as training runs them: one XLA compile instead of
    one per primitive (op-by-op dispatch is most of what an eager forward pass costs)."""
    return jax.jit(lambda k: fam.init(k, shape)), jax.jit(lambda p, t: fam.apply(p, t, shape))


@pytest.mark.parametrize("arch,budget", CASES)
def test_apply_gives_logits_per_position(arch, budget, key):
    fam = FAMILIES[arch]
    shape = shape_for_budget(arch, budget, VOCAB, 16)
    init, apply = _jitted(fam, shape)
    params = init(key)
    tokens = jax.random.randint(key, (3, 16), 0, VOCAB)
    logits = apply(params, tokens)
    assert logits.shape == (3, 16, VOCAB)
    assert logits.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(logits)))


@pytest.mark.parametrize("arch,budget", CASES)
def test_models_are_causal(arch, budget, key):
    """Changing a future token never changes an earlier prediction."""
    fam = FAMILIES[arch]
    shape = shape_for_budget(arch, budget, VOCAB, 16)
    init, apply = _jitted(fam, shape)
    params = init(key)
    # Perturb every knob: some families start at zero (softmax regression), which would
    # make the test vacuous.
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    params = jax.tree.unflatten(treedef, [p + 0.1 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
    tokens = jax.random.randint(key, (2, 16), 0, VOCAB)
    changed = tokens.at[:, 10].set((tokens[:, 10] + 1) % VOCAB)
    a, b = apply(params, tokens), apply(params, changed)
    np.testing.assert_array_equal(np.asarray(a[:, :10]), np.asarray(b[:, :10]))
    assert not np.allclose(np.asarray(a[:, 10:]), np.asarray(b[:, 10:]))


def test_transformer_starts_near_uniform_loss(key):
    fam = FAMILIES["transformer"]
    shape = shape_for_budget("transformer", 1e5, VOCAB, 64)
    init, apply = _jitted(fam, shape)
    params = init(key)
    tokens = jax.random.randint(key, (8, 64), 0, VOCAB)
    logits = apply(params, tokens)
    logp = jax.nn.log_softmax(logits[:, :-1])
    loss = -jnp.mean(jnp.take_along_axis(logp, tokens[:, 1:, None], -1))
    assert abs(float(loss) - np.log(VOCAB)) < 0.3


def test_knob_names_are_readable_tree_paths(key):
    from knobsim.models.sizing import param_shapes
    shape = shape_for_budget("transformer", 1e4, VOCAB, 16)
    paths = set(param_shapes("transformer", shape))
    assert "blocks.0.attn.w_qkv_D3D" in paths and "embed.tok_VD" in paths
