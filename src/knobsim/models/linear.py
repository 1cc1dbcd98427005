"""The "old linear model": softmax regression on the previous characters.

logits_t = b + sum_{i=1..n} W_i[x_{t-i}], i.e. multinomial logistic regression on the
one-hot codes of the last ``context`` characters. Small budgets (the explainer's 20-200
knobs) factor each W_i through a rank-``rank`` bottleneck: W_i = E_i @ U. ``rank = 0``
means full rank (each W_i is V x V). Positions before the window are the space token,
which is exactly what precedes a window that starts at a word boundary.

Shapes: B batch, T time, V vocab, R rank, N context.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from knobsim.config import LinearShape as Shape  # the family's shape: vocab, context, rank


def init(key: jax.Array, shape: Shape) -> dict:
    v, n, r = shape.vocab, shape.context, shape.rank
    if r == 0:
        return {"embed": {"w_NVV": jnp.zeros((n, v, v))}, "out": {"b_V": jnp.zeros((v,))}}
    k_in, k_out = jax.random.split(key)
    return {
        "embed": {
            "w_in_NVR": jax.random.normal(k_in, (n, v, r)),
            "w_out_RV": jax.random.normal(k_out, (r, v)) / jnp.sqrt(r * n),
        },
        "out": {"b_V": jnp.zeros((v,))},
    }


def _shifted(tokens_BT: jax.Array, n: int) -> jax.Array:
    """(N, B, T): the token i+1 steps back, space-padded at the start of the window."""
    padded = jnp.pad(tokens_BT, ((0, 0), (n - 1, 0)))  # 0 is the space token
    t = tokens_BT.shape[1]
    return jnp.stack([padded[:, n - 1 - i : n - 1 - i + t] for i in range(n)])


def apply(params: dict, tokens_BT: jax.Array, shape: Shape) -> jax.Array:
    n = shape.context
    prev_NBT = _shifted(tokens_BT, n)
    idx = jnp.arange(n)[:, None, None]
    if shape.rank == 0:
        logits = params["embed"]["w_NVV"][idx, prev_NBT].sum(0)
    else:
        h_BTR = params["embed"]["w_in_NVR"][idx, prev_NBT].sum(0)
        logits = h_BTR @ params["embed"]["w_out_RV"]
    return logits + params["out"]["b_V"]


def count(shape: Shape) -> int:
    v, n, r = shape.vocab, shape.context, shape.rank
    return (n * v * v if r == 0 else n * v * r + r * v) + v


def min_params(vocab: int) -> int:
    """The smallest model: rank 1, one character of context."""
    return 3 * vocab


def default_lr(n_params: int) -> float:
    return 3e-2


def lr_multiplier(path: str, shape: Shape) -> float:
    return 1.0


def attention_flops(shape: Shape, seq: int) -> float:
    return 0.0


def size(budget: int, vocab: int, seq: int) -> Shape:
    """Nearest achievable shape: rank 1..V/2 factored or full rank, context 1..8.

    Ties go to the shorter context (the explainer's linear model looks one step back).
    """
    best = None
    for n in range(1, min(8, seq) + 1):
        for r in list(range(1, vocab // 2 + 1)) + [0]:
            shape = Shape(vocab=vocab, context=n, rank=r)
            err = abs(count(shape) - budget)
            if best is None or err < best[0]:
                best = (err, shape)
    return best[1]


def component(path: str) -> str:
    return "embedding" if path.startswith("embed") else "bias"


def is_embedding(path: str) -> bool:
    return path.startswith("embed")


def activation_floats(shape: Shape, batch: int, seq: int) -> int:
    r = shape.rank or shape.vocab
    return batch * seq * (shape.context * r + 3 * shape.vocab)


def describe(shape: Shape) -> str:
    rank = "full rank" if shape.rank == 0 else f"rank {shape.rank}"
    return f"softmax regression on the last {shape.context} char(s), {rank}"
