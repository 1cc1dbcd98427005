"""A GPT-style decoder: pre-LayerNorm blocks, causal multi-head attention, GELU MLP.

Close to GPT-2/nanoGPT, with two choices for small models, said plainly:
  * positions are fixed sinusoids (Vaswani et al. 2017), not a learned table, so no knob
    is spent on positions and the count does not depend on the context length;
  * the unembedding is tied to the token embedding (as in GPT-2 and nanoGPT).
All matrices and biases are knobs; LayerNorms have a scale and a bias. The count goes
through ``knobsim.models.counting`` like the zoo's published models.

Shapes: B batch, T time, D d_model, H heads, K head dim, F d_ff, V vocab, L layers.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from knobsim.config import TransformerShape as Shape  # the family's shape (d_model, n_layer, ...)
from knobsim.models.counting import DecoderSpec, count_decoder
from knobsim.models.dense import matmul
from knobsim.models.norm import layernorm


def spec(shape: Shape) -> DecoderSpec:
    """knobsim's transformer as a DecoderSpec: the one counting path."""
    return DecoderSpec(
        vocab=shape.vocab,
        d_model=shape.d_model,
        n_layer=shape.n_layer,
        n_head=shape.n_head,
        d_ff=shape.d_ff,
        context=shape.seq,
        learned_pos=False,
        tied_embeddings=True,
    )


def _dense(key, d_in, d_out, scale=1.0):
    # Fan-in init: unit-variance activations at any width (0.02 is tuned for d ~ 768).
    return jax.random.normal(key, (d_in, d_out)) * (scale / math.sqrt(d_in))


def init(key: jax.Array, shape: Shape) -> dict:
    v, d, f, n_layer = shape.vocab, shape.d_model, shape.d_ff, shape.n_layer
    keys = jax.random.split(key, n_layer + 1)
    # Residual projections shrink by 1/sqrt(2L) so the residual stream's variance does not
    # grow with depth (GPT-2 section 2.3).
    res = 1.0 / math.sqrt(2 * n_layer)
    params = {
        "embed": {"tok_VD": jax.random.normal(keys[0], (v, d))},
        "blocks": {},
        "ln_f": {"scale_D": jnp.ones((d,)), "bias_D": jnp.zeros((d,))},
    }
    for layer in range(n_layer):
        k = jax.random.split(keys[layer + 1], 4)
        params["blocks"][str(layer)] = {
            "ln1": {"scale_D": jnp.ones((d,)), "bias_D": jnp.zeros((d,))},
            "attn": {
                "w_qkv_D3D": _dense(k[0], d, 3 * d),
                "b_qkv_3D": jnp.zeros((3 * d,)),
                "w_o_DD": _dense(k[1], d, d, res),
                "b_o_D": jnp.zeros((d,)),
            },
            "ln2": {"scale_D": jnp.ones((d,)), "bias_D": jnp.zeros((d,))},
            "mlp": {
                "w_in_DF": _dense(k[2], d, f),
                "b_in_F": jnp.zeros((f,)),
                "w_out_FD": _dense(k[3], f, d, res),
                "b_out_D": jnp.zeros((d,)),
            },
        }
    return params


def _layernorm(x, p):
    return layernorm(x, p["scale_D"], p["bias_D"])


def sinusoids(t: int, d: int) -> jax.Array:
    """(T, D) fixed position code: sin on even, cos on odd channels."""
    pos = jnp.arange(t, dtype=jnp.float32)[:, None]
    i = jnp.arange(d)[None, :]
    angle = pos / jnp.power(10_000.0, (2 * (i // 2)).astype(jnp.float32) / d)
    return jnp.where(i % 2 == 0, jnp.sin(angle), jnp.cos(angle))


MIN_SPLIT_SEQ = 32  # an odd or shorter context attends in one block (the split is not measured there)


def _causal_mix(q, k, v, first: int):
    """Softmax attention of queries at positions first.. over the keys before them: (B, Tq,
    H, K) queries, (B, S, H, K) keys and values with S = first + Tq."""
    tq, s = q.shape[1], k.shape[1]
    s_BHTS = jnp.einsum("bthk,bshk->bhts", q, k) / math.sqrt(q.shape[-1])
    causal = jnp.arange(s)[None, :] <= jnp.arange(first, first + tq)[:, None]
    s_BHTS = jnp.where(causal, s_BHTS, jnp.finfo(s_BHTS.dtype).min)
    w_BHTS = jax.nn.softmax(s_BHTS.astype(jnp.float32), axis=-1).astype(v.dtype)
    return jnp.einsum("bhts,bshk->bthk", w_BHTS, v)


def _key_bias_without_gradient(b_3D, d):
    """The key bias's gradient is exactly 0: it adds q_t . b_k to every score of query t,
    which the softmax cancels. Computed by autodiff it is rounding noise instead (~1e-11 at
    init, against ~1e-4 for the query bias), and Adam, dividing by its root mean square
    (floored by eps = 1e-8), turns that noise into a random walk (the 1e5-knob model's key
    bias reached |b_k| ~ 1.7e-3 in 400 steps, the query bias 0.098) whose steps differ
    between two programs that round differently (a scanned chunk against its steps one by
    one, a watched run against a plain one). So it is 0 here, as it is exactly:
    the key bias is a knob that cannot move the loss, and it does not move."""
    return jnp.concatenate([b_3D[:d], jax.lax.stop_gradient(b_3D[d:2 * d]), b_3D[2 * d:]])


def _attention(x_BTD, p, n_head):
    b, t, d = x_BTD.shape
    k_dim = d // n_head
    qkv = matmul(x_BTD, p["w_qkv_D3D"]) + _key_bias_without_gradient(p["b_qkv_3D"], d)
    q, k, v = jnp.split(qkv.reshape(b, t, 3, n_head, k_dim), 3, axis=2)
    q, k, v = (a[:, :, 0] for a in (q, k, v))  # (B, T, H, K)
    # Causal attention in two query halves: the first half's keys are only the first half,
    # so a quarter of the scores (all of them masked) is never computed, as PyTorch's flash
    # kernel skips masked blocks. The same softmax (a masked score adds an exact 0), other
    # rounding. docs/performance.md ("Attention in two halves") has the measurements.
    if t % 2 or t < MIN_SPLIT_SEQ:
        o = _causal_mix(q, k, v, 0)
    else:
        h = t // 2
        o = jnp.concatenate([_causal_mix(q[:, :h], k[:, :h], v[:, :h], 0), _causal_mix(q[:, h:], k, v, h)], axis=1)
    return matmul(o.reshape(b, t, d), p["w_o_DD"]) + p["b_o_D"]


def _mlp(x_BTD, p):
    h_BTF = jax.nn.gelu(matmul(x_BTD, p["w_in_DF"]) + p["b_in_F"])
    return matmul(h_BTF, p["w_out_FD"]) + p["b_out_D"]


def apply(params: dict, tokens_BT: jax.Array, shape: Shape) -> jax.Array:
    """(B, T) int tokens -> (B, T, V) logits."""
    emb_VD = params["embed"]["tok_VD"]
    d = emb_VD.shape[1]
    # Unit-variance token codes plus unit-amplitude position codes.
    x = emb_VD[tokens_BT] + sinusoids(tokens_BT.shape[1], d).astype(emb_VD.dtype)
    for layer in range(shape.n_layer):
        blk = params["blocks"][str(layer)]
        x = x + _attention(_layernorm(x, blk["ln1"]), blk["attn"], shape.n_head)
        x = x + _mlp(_layernorm(x, blk["ln2"]), blk["mlp"])
    x = _layernorm(x, params["ln_f"])
    # The tied readout is scaled by 1/D (the muP output multiplier): without it a token's
    # own embedding dominates its logits at init (a self-logit of order D) and the first
    # loss is far above log V.
    return (x @ emb_VD.T) / d


def count(shape: Shape) -> int:
    return count_decoder(spec(shape))["total"]


def min_params(vocab: int) -> int:
    return count(Shape(vocab=vocab, d_model=2, n_layer=1, n_head=1, d_ff=4, seq=1))


def default_lr(n_params: int) -> float:
    """Size-aware default peak learning rate (docs/models.md, "Learning rates").

    Small models want large Adam steps. A grid on the first, English-like language
    (now --preset english) at 2M tokens
    (benchmarks/tune_lr.py; lr in {0.01, 0.03, 0.06}) found the best eval loss at 0.06 for
    1e3 and 1e4 knobs and 0.01 for 1e5; the rule 0.01 (N / 1e5)^-0.4, kept within
    [1e-3, 0.05], follows that and falls on towards the ~1e-3 of nanoGPT-sized models.
    """
    lr = 1e-2 * (n_params / 1e5) ** -0.4
    return float(min(max(lr, 1e-3), 5e-2))


def attention_flops(shape: Shape, seq: int) -> float:
    """Training FLOPs per token of attention's scores and mixing: 12 L T D (Kaplan et al.
    2020, Table 1, forward and backward, causal counted in full)."""
    return 12.0 * shape.n_layer * seq * shape.d_model


# muP (Yang et al. 2022, "Tensor Programs V", Table 8, the formulation with multipliers):
# input weights (the embedding, init variance 1) and all biases and gains keep a
# width-independent Adam lr; the output layer keeps its lr with a 1/fan_in multiplier (our
# tied readout already divides by D); hidden matrices, initialised with variance 1/fan_in,
# take Adam lr proportional to 1/fan_in. With shape.mup_base_d = B the hidden matrices'
# lr is multiplied by B / d_model (fan_in is D or d_ff = c D, so the ratio is the same),
# and at d_model = B the model is exactly the standard one. Heads keep their size as the
# width grows (more heads), so the 1/sqrt(head dim) attention scale stays muP-correct.
HIDDEN_MATRICES = ("w_qkv_D3D", "w_o_DD", "w_in_DF", "w_out_FD")


def lr_multiplier(path: str, shape: Shape) -> float:
    """Per-tensor Adam lr multiplier: 1 in the standard parametrization."""
    base = shape.mup_base_d
    if base and path.rsplit(".", 1)[-1] in HIDDEN_MATRICES:
        return float(base) / shape.d_model
    return 1.0


def component(path: str) -> str:
    """Leaf path -> the component names of counting.count_decoder."""
    if path.startswith("embed"):
        return "token_embedding"
    if path.startswith("ln_f") or ".ln" in path:
        return "norms"
    return path.split(".")[2]  # blocks.<i>.attn / blocks.<i>.mlp


def is_embedding(path: str) -> bool:
    return path.startswith("embed")


def _head_dim_target(d: float) -> int:
    return 8 if d < 32 else 16 if d < 128 else 32 if d < 512 else 64 if d < 2048 else 128


def _aspect(budget: float) -> float:
    """Target d_model / n_layer: 8 at 1e3 knobs rising to 100 at 1e9.

    Kaplan et al. (2020, Fig. 5) find loss nearly flat for aspect ratios 20-200; tiny models
    cannot afford wide layers, so the target grows with size (GPT-2 small is 64, GPT-3 128).
    """
    return 8.0 * (budget / 1e3) ** (math.log(12.5) / math.log(1e6))


def _fit_ff(budget: int, vocab: int, d: int, n_layer: int) -> int:
    """The d_ff in [2D, 6D] that brings the total count nearest the budget."""
    fixed = vocab * d + n_layer * (4 * d * d + 9 * d) + 2 * d
    f = round((budget - fixed) / (n_layer * (2 * d + 1)))
    return int(min(max(f, 2 * d), 6 * d))


def size(budget: int, vocab: int, seq: int) -> Shape:
    """Budget -> shape. Sizing rule (documented in the README):

    1. the aspect ratio a(N) = D / L sets n_layer: L = round(D / a) with D = (a N / 12)^(1/3);
    2. for L-1, L, L+1 the width D solves N = 12 L D^2 + (13 L + V + 2) D (d_ff = 4 D);
       widths within 15% of it, on a grid of 1, 2, 8 or 64 by size, are candidates, with
       heads of about 8, 16, 32, 64 or 128 dims by width (n_head divides D);
    3. d_ff moves within [2D, 6D] to bring each candidate's total to the budget;
    4. among candidates within 1% of the budget, the aspect-rule depth and the width
       nearest the formula win; if none is within 1%, the nearest count wins.
    """
    a = _aspect(budget)
    d0 = (a * budget / 12) ** (1 / 3)
    l0 = max(1, round(d0 / a))
    cands = []
    for n_layer in {max(1, l0 - 1), l0, l0 + 1}:
        qa, qb = 12 * n_layer, 13 * n_layer + vocab + 2
        d_real = (-qb + math.sqrt(qb * qb + 4 * qa * budget)) / (2 * qa)
        hd = _head_dim_target(d_real)
        g = 1 if d_real < 16 else 2 if d_real < 64 else 8 if d_real < 512 else 64
        lo, hi = max(2, math.floor(0.85 * d_real / g) * g), math.ceil(1.15 * d_real / g) * g
        for d in range(max(2, lo), hi + 1, g):
            n_head = max(1, round(d / hd))
            while d % n_head:
                n_head -= 1
            shape = Shape(vocab=vocab, d_model=d, n_layer=n_layer, n_head=n_head,
                          d_ff=_fit_ff(budget, vocab, d, n_layer), seq=seq)
            err = abs(count(shape) - budget) / budget
            cands.append((err > 0.01, n_layer != l0, abs(math.log(d / d_real)), err, shape))
    cands.sort(key=lambda c: c[:4])
    return cands[0][4]


def activation_floats(shape: Shape, batch: int, seq: int) -> int:
    """Floats kept for the backward pass, per step (a rough upper estimate)."""
    d, f, h, n = shape.d_model, shape.d_ff, shape.n_head, shape.n_layer
    per_layer = batch * seq * (10 * d + 2 * f + 3 * h * seq)
    return n * per_layer + 3 * batch * seq * (d + shape.vocab)


def describe(shape: Shape) -> str:
    return (
        f"GPT decoder: {shape.n_layer} layers x d_model {shape.d_model}, "
        f"{shape.n_head} heads, d_ff {shape.d_ff}"
    )
