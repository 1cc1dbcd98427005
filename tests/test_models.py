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


def test_every_family_has_the_declared_interface():
    """The family interface is declared once (knobsim.models.Family) and every registered
    family provides all of it, so no code switches on a family's name."""
    from knobsim.models import FAMILIES, Family
    from knobsim.models import sizing
    from knobsim.core.optim import default_lr

    names = [n for n in vars(Family) if not n.startswith("_") and callable(getattr(Family, n))]
    assert len(names) >= 12
    for arch, fam in FAMILIES.items():
        assert isinstance(fam, Family), arch
        assert all(callable(getattr(fam, n, None)) for n in names), arch
    # the values the old switches gave
    assert [sizing.min_params(a, 27) for a in ("linear", "mlp", "transformer")] == [
        81, FAMILIES["mlp"].count(FAMILIES["mlp"].Shape(vocab=27, context=1, d_embed=1, d_hidden=1)),
        FAMILIES["transformer"].count(FAMILIES["transformer"].Shape(vocab=27, d_model=2, n_layer=1,
                                                                    n_head=1, d_ff=4, seq=1))]
    assert (default_lr("linear", 500), default_lr("mlp", 5e4)) == (3e-2, 3e-3)
    assert default_lr("transformer", 1e5) == 1e-2 and default_lr("transformer", 1e9) == 1e-3


def test_every_family_has_a_typed_shape_that_config_json_reads_back():
    """A shape is its family's frozen dataclass (registered as family.Shape, the same class
    config.MODEL_SHAPES reads config.json into), written with the very keys the old dicts
    had: an optional field at None is left out."""
    import dataclasses

    from knobsim.config import MODEL_SHAPES
    from knobsim.errors import KnobsimError

    assert {a: f.Shape for a, f in FAMILIES.items()} == MODEL_SHAPES
    keys = {"linear": ["vocab", "context", "rank"], "mlp": ["vocab", "context", "d_embed", "d_hidden"],
            "transformer": ["vocab", "d_model", "n_layer", "n_head", "d_ff", "seq"]}
    for arch, fam in FAMILIES.items():
        shape = shape_for_budget(arch, 5000, VOCAB, 16)
        assert isinstance(shape, fam.Shape) and dataclasses.is_dataclass(shape), arch
        assert list(shape.to_dict()) == keys[arch], arch  # config.json's keys, in their order
        assert fam.Shape.from_dict(shape.to_dict()) == shape
        with pytest.raises(dataclasses.FrozenInstanceError):
            shape.vocab = 3
    t = shape_for_budget("transformer", 5000, VOCAB, 16)
    mup = dataclasses.replace(t, mup_base_d=8)
    assert mup.to_dict() == {**t.to_dict(), "mup_base_d": 8}
    assert FAMILIES["transformer"].Shape.from_dict(mup.to_dict()) == mup
    for bad, why in [({"d_model": 8}, "missing vocab, n_layer, n_head, d_ff, seq"),
                     ({**t.to_dict(), "heads": 2}, "unknown heads"),
                     ({**t.to_dict(), "d_model": 8.5}, "not whole numbers: d_model")]:
        with pytest.raises(KnobsimError, match=f"is not a transformer shape [(]{why}[)]"):
            FAMILIES["transformer"].Shape.from_dict(bad)


def test_the_dense_layers_gradients_are_autodiffs_in_another_order(key):
    """models.dense.matmul computes the weight gradient as (gᵀ x)ᵀ (for XLA:CPU's layouts):
    the same gradients as autodiff's x @ w, to float rounding, for a batch of sequences."""
    from knobsim.models.dense import matmul as _matmul

    kx, kw, kg = jax.random.split(key, 3)
    x = jax.random.normal(kx, (3, 5, 7))
    w = jax.random.normal(kw, (7, 4))
    g = jax.random.normal(kg, (3, 5, 4))
    ours = jax.vjp(_matmul, x, w)
    plain = jax.vjp(lambda a, b: a @ b, x, w)
    np.testing.assert_array_equal(ours[0], plain[0])  # the forward is the same dot
    for a, b in zip(ours[1](g), plain[1](g)):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # and under vmap (seeds trained together) and in bf16 (the mixed-precision path)
    xs, ws, gs = (jnp.stack([t, 2 * t]) for t in (x, w, g))
    dx, dw = jax.vmap(lambda a, b, c: jax.vjp(_matmul, a, b)[1](c))(xs, ws, gs)
    np.testing.assert_allclose(dw[1], 2 * jnp.einsum("bti,bto->io", 2 * x, g), rtol=1e-5, atol=1e-4)
    half = jax.vjp(_matmul, x.astype(jnp.bfloat16), w.astype(jnp.bfloat16))[1](g.astype(jnp.bfloat16))
    assert [t.dtype for t in half] == [jnp.bfloat16, jnp.bfloat16]


def _transformer_away_from_init(key):
    """A 5k-knob transformer at 64 positions with every knob moved off its init (zero biases
    would hide a bias's effect), and two rows of tokens."""
    fam = FAMILIES["transformer"]
    shape = shape_for_budget("transformer", 5000, VOCAB, 64)
    params = fam.init(key, shape)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    params = jax.tree.unflatten(treedef, [p + 0.1 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
    return fam, shape, params, jax.random.randint(key, (2, 64), 0, VOCAB)


def test_attention_in_two_halves_is_one_block_attention(key, monkeypatch):
    """From 32 positions on, the transformer attends in two query halves (the first half's
    scores against the second half's keys, all masked, are never computed): the same logits
    and gradients as one block, to float rounding, and causal across the halves' border."""
    from knobsim.models import transformer as T

    fam, shape, params, tokens = _transformer_away_from_init(key)

    def run():  # a new jit per call: MIN_SPLIT_SEQ is read when tracing
        apply = jax.jit(lambda p, t: fam.apply(p, t, shape))
        loss = jax.jit(jax.grad(lambda p: jnp.mean(jax.nn.log_softmax(fam.apply(p, tokens, shape))[..., 0])))
        return apply, loss

    apply, grad = run()
    split, g_split = apply(params, tokens), grad(params)
    for at, same_before in ((40, 40), (20, 20)):  # a change in the second half, then in the first
        changed = apply(params, tokens.at[:, at].set((tokens[:, at] + 1) % VOCAB))
        np.testing.assert_array_equal(np.asarray(split[:, :same_before]), np.asarray(changed[:, :same_before]))
        assert not np.allclose(np.asarray(split[:, 48:]), np.asarray(changed[:, 48:]))  # the second half sees it
    monkeypatch.setattr(T, "MIN_SPLIT_SEQ", 10**9)
    apply, grad = run()
    np.testing.assert_allclose(np.asarray(split), np.asarray(apply(params, tokens)), rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(g_split), jax.tree.leaves(grad(params))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_the_key_bias_has_no_gradient_and_no_effect(key):
    """The key bias adds q_t . b_k to every score of query t, which the softmax cancels: its
    gradient is exactly 0 (not autodiff's rounding noise, which Adam would turn into a random
    walk), and moving it changes the logits only by rounding."""
    fam, shape, params, tokens = _transformer_away_from_init(key)
    loss = lambda p: jnp.mean(jax.nn.log_softmax(fam.apply(p, tokens, shape))[..., 0])
    g = jax.jit(jax.grad(loss))(params)
    d = shape.d_model
    for blk in g["blocks"].values():
        b = np.asarray(blk["attn"]["b_qkv_3D"])
        np.testing.assert_array_equal(b[d:2 * d], 0.0)
        assert np.all(b[:d] != 0) and np.all(b[2 * d:] != 0)  # the query's and value's do move
    moved = jax.tree.map(lambda x: x, params)
    for blk in moved["blocks"].values():
        blk["attn"]["b_qkv_3D"] = blk["attn"]["b_qkv_3D"].at[d:2 * d].add(0.5)
    apply = jax.jit(lambda p: fam.apply(p, tokens, shape))
    np.testing.assert_allclose(np.asarray(apply(moved)), np.asarray(apply(params)), rtol=1e-4, atol=1e-4)


def test_layernorms_written_backward_is_autodiffs(key):
    """models.norm.layernorm has its backward written out (fewer passes for XLA:CPU): the
    forward and the three gradients equal autodiff's of the plain formula, to float
    rounding, also under vmap (seeds trained together) and in bf16 (the mixed-precision
    path, statistics in float32)."""
    from knobsim.models.norm import EPS, layernorm

    def plain(x, s, b):
        x32 = x.astype(jnp.float32)
        mu = x32.mean(-1, keepdims=True)
        y = (x32 - mu) / jnp.sqrt(((x32 - mu) ** 2).mean(-1, keepdims=True) + EPS) * s + b
        return y.astype(x.dtype)

    kx, ks, kb, kg = jax.random.split(key, 4)
    x = 3.0 * jax.random.normal(kx, (3, 5, 16)) + 1.0
    s, b = 1.0 + jax.random.normal(ks, (16,)), jax.random.normal(kb, (16,))
    g = jax.random.normal(kg, (3, 5, 16))
    ours, plain_ = jax.vjp(layernorm, x, s, b), jax.vjp(plain, x, s, b)
    np.testing.assert_allclose(ours[0], plain_[0], rtol=1e-5, atol=1e-5)
    for a, c in zip(ours[1](g), plain_[1](g)):
        assert a.shape == c.shape and a.dtype == c.dtype
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-4)
    xs, ss, bs, gs = (jnp.stack([t, -t]) for t in (x, s, b, g))
    vm = jax.vmap(lambda *a: jax.vjp(layernorm, *a[:3])[1](a[3]))(xs, ss, bs, gs)
    ref = jax.vmap(lambda *a: jax.vjp(plain, *a[:3])[1](a[3]))(xs, ss, bs, gs)
    for a, c in zip(vm, ref):
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-4)
    half = [t.astype(jnp.bfloat16) for t in (x, s, b, g)]
    dh = jax.vjp(layernorm, *half[:3])[1](half[3])
    assert [t.dtype for t in dh] == [jnp.bfloat16] * 3
    for a, c in zip(dh, jax.vjp(plain, *half[:3])[1](half[3])):
        np.testing.assert_allclose(np.float32(a), np.float32(c), rtol=0.05, atol=0.1)
