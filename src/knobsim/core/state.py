"""The train state and what every program shares: dtypes, the loss, seeds, flat weights.

    TrainState(step, params, opt_state, key)        a pytree, donated to each chunk
    loss_fn(params, tokens_BT1, apply, dtype)        mean next-character cross-entropy (nats)
    flat_params / unflat_params                      leaf path -> numpy array, and back
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from knobsim.config import RunConfig
from knobsim.errors import KnobsimError
from knobsim.models import sizing


class TrainState(NamedTuple):
    step: jax.Array  # () int32: updates done so far
    params: dict
    opt_state: optax.OptState
    key: jax.Array  # data key of the run; the batch of step s uses fold_in(key, s)


# Compute dtypes: the weights (the optimizer's master copy), the optimizer state and the
# loss stay float32 whatever the compute dtype (mixed precision as in Micikevicius et al.
# 2018 and levanter/big_vision: cast the weights at use, never store them in bf16).
DTYPES = {"float32": jnp.float32, "fp32": jnp.float32, "f32": jnp.float32,
          "bfloat16": jnp.bfloat16, "bf16": jnp.bfloat16}


def canonical_dtype(name: str) -> str:
    """'bf16' -> 'bfloat16', 'fp32' -> 'float32'; a one-line error for anything else."""
    key = str(name).strip().lower()
    if key not in DTYPES:
        raise KnobsimError(f"--dtype {name!r} is not known; use float32 (default) or bf16")
    return jnp.dtype(DTYPES[key]).name


def cast_floats(tree, dtype):
    """The tree with every floating array cast to ``dtype`` (a no-op for its own dtype)."""
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def loss_fn(params, tokens_BT1, apply: Callable, dtype="float32") -> jax.Array:
    """Mean next-character cross-entropy in nats. ``dtype`` is the compute dtype: the float32
    weights are cast to it inside the differentiated function (so their gradients come back
    float32); logits and the loss are always float32."""
    if jnp.dtype(dtype) != jnp.float32:
        params = cast_floats(params, dtype)
    logits = apply(params, tokens_BT1[:, :-1]).astype(jnp.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens_BT1[:, 1:]).mean()



def seed_keys(seed: int) -> dict[str, jax.Array]:
    """Independent streams from one training seed: init, training data, the data pool."""
    root = jax.random.key(seed)
    return {"init": jax.random.fold_in(root, 0), "data": jax.random.fold_in(root, 1),
            "pool": jax.random.fold_in(root, 3)}



def flat_params(params, copy: bool = False) -> dict[str, np.ndarray]:
    """Leaf path -> numpy array; ``copy`` when the device buffers will be donated later
    (on CPU np.asarray may share memory with them)."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return {sizing.leaf_path(p): np.array(x, copy=True) if copy else np.asarray(x) for p, x in leaves}


def unflat_params(cfg: RunConfig, flat: dict[str, np.ndarray]) -> dict:
    """The inverse of flat_params for ``cfg``'s model, checking every name and shape."""
    fam = sizing.family(cfg.model.arch)
    abstract = jax.eval_shape(functools.partial(fam.init, shape=cfg.model.shape), jax.random.key(0))

    def leaf(path, x):
        name = sizing.leaf_path(path)
        if name not in flat:
            raise KnobsimError(f"the weights have no tensor {name!r}: they belong to another model")
        w = np.asarray(flat[name])
        if w.shape != x.shape:
            raise KnobsimError(f"tensor {name} has shape {w.shape}, the model needs {x.shape}")
        return jnp.asarray(w, x.dtype)

    return jax.tree_util.tree_map_with_path(leaf, abstract)
