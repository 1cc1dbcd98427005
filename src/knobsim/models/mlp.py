"""The "early DNN": a Bengio et al. (2003) neural language model over characters.

Embed each of the last ``context`` characters (C: V x d), concatenate, one tanh hidden
layer of width h, softmax output. Bengio's model also had optional direct connections;
we leave them out so the count is the textbook one:
    N = V d + (n d) h + h + h V + V.

Shapes: B batch, T time, V vocab, N context, E embedding width, H hidden width.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from knobsim.config import MLPShape as Shape  # the family's shape: vocab, context, d_embed, d_hidden
from knobsim.models.dense import matmul
from knobsim.models.linear import _shifted


def init(key: jax.Array, shape: Shape) -> dict:
    v, n, e, h = shape.vocab, shape.context, shape.d_embed, shape.d_hidden
    k_emb, k_h, k_o = jax.random.split(key, 3)
    return {
        "embed": {"w_VE": jax.random.normal(k_emb, (v, e))},
        "hidden": {
            "w_XH": jax.random.normal(k_h, (n * e, h)) / jnp.sqrt(n * e),
            "b_H": jnp.zeros((h,)),
        },
        "out": {"w_HV": jax.random.normal(k_o, (h, v)) / jnp.sqrt(h), "b_V": jnp.zeros((v,))},
    }


def apply(params: dict, tokens_BT: jax.Array, shape: Shape) -> jax.Array:
    prev_NBT = _shifted(tokens_BT, shape.context)
    x_NBTE = params["embed"]["w_VE"][prev_NBT]
    n, b, t, e = x_NBTE.shape
    x_BTX = jnp.transpose(x_NBTE, (1, 2, 0, 3)).reshape(b, t, n * e)
    h_BTH = jnp.tanh(matmul(x_BTX, params["hidden"]["w_XH"]) + params["hidden"]["b_H"])
    return matmul(h_BTH, params["out"]["w_HV"]) + params["out"]["b_V"]


def count(shape: Shape) -> int:
    v, n, e, h = shape.vocab, shape.context, shape.d_embed, shape.d_hidden
    return v * e + n * e * h + h + h * v + v


def min_params(vocab: int) -> int:
    return count(Shape(vocab=vocab, context=1, d_embed=1, d_hidden=1))


def default_lr(n_params: int) -> float:
    return 3e-3


def lr_multiplier(path: str, shape: Shape) -> float:
    return 1.0


def attention_flops(shape: Shape, seq: int) -> float:
    return 0.0


def _nearest_hidden(budget: int, vocab: int, n: int, e: int) -> Shape:
    h = max(1, round((budget - vocab * e - vocab) / (n * e + 1 + vocab)))
    return Shape(vocab=vocab, context=n, d_embed=e, d_hidden=h)


def size(budget: int, vocab: int, seq: int) -> Shape:
    """Sizing rule: context 8 chars (capped by seq); embedding width 8 below 2e4 knobs,
    16 below 1e6, 32 above; the hidden width is then the nearest that meets the budget.
    If that misses the budget by more than 2% (tiny budgets), the nearest count over
    contexts 1..8 and widths 1..64 wins, longer contexts first on ties."""
    n = min(8, seq)
    e = 8 if budget < 2e4 else 16 if budget < 1e6 else 32
    shape = _nearest_hidden(budget, vocab, n, e)
    if abs(count(shape) - budget) <= 0.02 * budget:
        return shape
    cands = [_nearest_hidden(budget, vocab, c, w) for c in range(n, 0, -1) for w in (1, 2, 4, 8, 16, 32, 64)]
    return min(cands, key=lambda s: abs(count(s) - budget))


def component(path: str) -> str:
    return path.split(".")[0]


def is_embedding(path: str) -> bool:
    return path.startswith("embed")


def activation_floats(shape: Shape, batch: int, seq: int) -> int:
    return batch * seq * (shape.context * shape.d_embed + 3 * shape.d_hidden + 3 * shape.vocab)


def describe(shape: Shape) -> str:
    return (
        f"Bengio MLP: {shape.context} chars x {shape.d_embed}-d embeddings -> "
        f"{shape.d_hidden} tanh units -> softmax"
    )
