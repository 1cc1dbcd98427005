import jax
import numpy as np
import pytest

from knobsim.core.plan import plan_run

from knobsim.core.programs import build_programs, init_state
from knobsim.io.checkpoint import Checkpointer
from knobsim.data.language import build_language
from knobsim.data.sampler import device_tables, words_needed
from knobsim.errors import KnobsimError


def _setup(params=2000):
    # The tiny config of test_watch.py and test_train.py: chunks of 5 share their compile.
    cfg = plan_run(params=params, steps=20, batch=4, seq=16, chunk=5, check_memory=False)
    lang = build_language(cfg.language)
    nw = words_needed(lang, 16)
    return cfg, device_tables(lang), build_programs(cfg, nw)


def test_round_trip_is_exact_and_continues_bit_for_bit(tmp_path):
    cfg, tables, progs = _setup()
    state, _ = progs.chunk(init_state(cfg, progs), tables, None, 5)
    ck = Checkpointer(tmp_path, keep=2)
    ck.save(state)
    restored, ref = ck.restore(init_state(cfg, progs))
    assert ref is None
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored)):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Continue both (the original is donated by chunk, so copy it first).
    _, m1 = progs.chunk(jax.tree.map(lambda x: x.copy(), state), tables, None, 5)
    _, m2 = progs.chunk(restored, tables, None, 5)
    np.testing.assert_array_equal(np.asarray(m1["loss"]), np.asarray(m2["loss"]))


def test_keeps_only_the_last_few(tmp_path):
    cfg, tables, progs = _setup()
    state = init_state(cfg, progs)
    ck = Checkpointer(tmp_path, keep=2)
    for _ in range(3):  # chunks of 5, the program the other tests compiled: steps 5, 10, 15
        state, _ = progs.chunk(state, tables, None, 5)
        ck.save(state)
    assert ck.steps() == [10, 15]


def test_restoring_into_another_shape_is_one_clear_error(tmp_path):
    cfg, tables, progs = _setup(2000)
    ck = Checkpointer(tmp_path)
    ck.save(init_state(cfg, progs))
    cfg2, _, progs2 = _setup(20000)
    with pytest.raises(KnobsimError, match="does not match"):
        ck.restore(init_state(cfg2, progs2))
