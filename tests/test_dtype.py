"""--dtype bf16: compute in bfloat16, keep float32 master weights, optimizer state and loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from knobsim.core import train as T

from knobsim.core.plan import plan_run

from knobsim.core.programs import build_programs, init_state
from knobsim.data.language import build_language
from knobsim.data.sampler import device_tables, words_needed
from knobsim.errors import KnobsimError


def _programs(dtype, **kw):
    args = dict(params=3000, steps=20, batch=8, seq=32, chunk=10, lr=1e-2, check_memory=False, dtype=dtype)
    args.update(kw)
    cfg = plan_run(**args)
    lang = build_language(cfg.language)
    progs = build_programs(cfg, words_needed(lang, cfg.train.seq))
    return cfg, device_tables(lang), progs


@pytest.mark.parametrize("given, canonical", [("bf16", "bfloat16"), ("BFloat16", "bfloat16"),
                                               ("fp32", "float32"), ("float32", "float32")])
def test_dtype_names(given, canonical):
    assert plan_run(params=3000, steps=4, check_memory=False, dtype=given).dtype == canonical


def test_unknown_dtype_is_one_line_error():
    with pytest.raises(KnobsimError, match=r"--dtype 'fp8' is not known; use float32 \(default\) or bf16"):
        plan_run(params=3000, steps=4, check_memory=False, dtype="fp8")


def test_bf16_computes_in_bf16_with_float32_master_weights():
    cfg, tables, progs = _programs("bf16")
    state = init_state(cfg, progs)
    hlo = progs.chunk.lower(state, tables, None, 10).compile().as_text()
    # The matmuls take bf16 operands (XLA may keep the result in f32: that is accumulation).
    assert "bf16[" in hlo and "dot(" in hlo
    state, m = progs.chunk(state, tables, None, 10)
    for leaf in jax.tree.leaves(state.params) + jax.tree.leaves(state.opt_state):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert leaf.dtype == jnp.float32  # master weights and Adam moments
    assert m["loss"].dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(m["loss"])))


def test_float32_program_has_no_bf16():
    cfg, tables, progs = _programs("float32")
    hlo = progs.chunk.lower(init_state(cfg, progs), tables, None, 10).compile().as_text()
    assert "bf16[" not in hlo


def test_bf16_tracks_float32_and_is_deterministic():
    cfg32 = plan_run(params=3000, steps=60, batch=8, seq=32, lr=1e-2, check_memory=False)
    cfg16 = plan_run(params=3000, steps=60, batch=8, seq=32, lr=1e-2, check_memory=False, dtype="bf16")
    a32 = T.train(cfg32)
    a16, b16 = T.train(cfg16), T.train(cfg16)
    assert a16["dtype"] == "bfloat16" and a32["dtype"] == "float32"
    # Same init, same data: the first evaluation differs by bf16 rounding only.
    assert a16["initial_eval_loss"] == pytest.approx(a32["initial_eval_loss"], abs=0.02)
    assert a16["final_eval_loss"] < a16["initial_eval_loss"] - 0.5  # it learns
    assert a16["final_eval_loss"] == pytest.approx(a32["final_eval_loss"], abs=0.1)
    for k in ("final_eval_loss", "final_train_loss"):
        assert a16[k] == b16[k]  # same bits


def test_layernorm_statistics_are_float32():
    from knobsim.models import transformer

    x = (jax.random.normal(jax.random.key(0), (4, 512)) * 0.01 + 100.0).astype(jnp.bfloat16)
    p = {"scale_D": jnp.ones((512,)), "bias_D": jnp.zeros((512,))}
    y = transformer._layernorm(x, p)
    assert y.dtype == jnp.bfloat16
    ref = transformer._layernorm(x.astype(jnp.float32), p)
    # Normalised output: unit variance per row, as the float32 reference.
    np.testing.assert_allclose(np.asarray(y, np.float32), np.asarray(ref), atol=0.05)
