"""Exact parameter counts of decoder-only transformers, from their architecture alone.

This is the one counting path of knobsim: its own transformer (``models/transformer.py``)
and the zoo of published models (``zoo.py``) both count through :func:`count_decoder`, and
a test checks it against the leaf sizes of ``jax.eval_shape(init)``, so a printed count can
never disagree with what knobsim trains.

Conventions (say which count a plot uses!):
  * ``embedding``: token embedding, learned position embedding and, when untied, the output
    (unembedding) matrix and its bias. This is what Kaplan et al. (2020) leave out of N.
  * ``nonembedding``: everything else (attention, MLP, norms, final norm).
"""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True)
class DecoderSpec:
    """Architecture facts that fix a decoder-only transformer's parameter count."""

    vocab: int  # tokens in the vocabulary
    d_model: int  # residual stream width
    n_layer: int  # decoder blocks
    n_head: int  # query heads
    d_ff: int  # hidden width of the MLP (per branch when gated)
    context: int = 1024  # maximum sequence length (counts only with learned positions)
    n_kv_head: int | None = None  # key/value heads (grouped-query attention); None = n_head
    head_dim: int | None = None  # per-head width; None = d_model // n_head
    gated_mlp: bool = False  # SwiGLU/GeGLU: three matrices instead of two
    learned_pos: bool = True  # a learned (context x d_model) position table
    tied_embeddings: bool = True  # unembedding shares the token embedding
    attn_bias: bool = True  # biases on q, k, v and the attention output
    mlp_bias: bool = True  # biases on the MLP matrices
    lm_head_bias: bool = False  # a bias on the logits (only when untied)
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"  # layernorm has scale and bias
    qk_norm: bool = False  # per-head RMSNorm on q and k (e.g. Gemma 3, OLMo 2)
    post_norms: bool = False  # extra norms after attention and MLP (Gemma 2 "sandwich")
    final_norm: bool = True  # a norm before the unembedding; GPT-1 (post-LN) has none

    def __post_init__(self):
        for name in ("vocab", "d_model", "n_layer", "n_head", "d_ff", "context"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.head_dim is None and self.d_model % self.n_head:
            raise ValueError(
                f"n_head={self.n_head} does not divide d_model={self.d_model}; "
                "pick a divisor or give head_dim explicitly"
            )
        kv = self.kv_heads
        if kv <= 0 or self.n_head % kv:
            raise ValueError(f"n_kv_head={kv} must be positive and divide n_head={self.n_head}")
        if self.hd <= 0:
            raise ValueError(f"head_dim must be positive, got {self.hd}")

    @property
    def kv_heads(self) -> int:
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def hd(self) -> int:
        return self.d_model // self.n_head if self.head_dim is None else self.head_dim


def norm_params(d: int, norm: str) -> int:
    """LayerNorm has a scale and a bias; RMSNorm only a scale."""
    return 2 * d if norm == "layernorm" else d


def count_layer(spec: DecoderSpec) -> dict[str, int]:
    """Parameters of one decoder block, by component."""
    d, hd = spec.d_model, spec.hd
    q_out, kv_out = spec.n_head * hd, spec.kv_heads * hd
    attn = d * (q_out + 2 * kv_out) + q_out * d
    if spec.attn_bias:
        attn += q_out + 2 * kv_out + d
    if spec.qk_norm:
        attn += 2 * hd
    n_mat = 3 if spec.gated_mlp else 2
    mlp = n_mat * d * spec.d_ff
    if spec.mlp_bias:
        mlp += (n_mat - 1) * spec.d_ff + d
    n_norms = 4 if spec.post_norms else 2
    return {"attn": attn, "mlp": mlp, "norms": n_norms * norm_params(d, spec.norm)}


def count_decoder(spec: DecoderSpec) -> dict[str, int]:
    """Exact parameter count by component, plus ``embedding``, ``nonembedding``, ``total``."""
    layer = count_layer(spec)
    tok = spec.vocab * spec.d_model
    pos = spec.context * spec.d_model if spec.learned_pos else 0
    head = 0
    if not spec.tied_embeddings:
        head = spec.vocab * spec.d_model + (spec.vocab if spec.lm_head_bias else 0)
    out = {
        "token_embedding": tok,
        "position_embedding": pos,
        "lm_head": head,
        "attn": spec.n_layer * layer["attn"],
        "mlp": spec.n_layer * layer["mlp"],
        "norms": spec.n_layer * layer["norms"]
        + (norm_params(spec.d_model, spec.norm) if spec.final_norm else 0),
    }
    out["embedding"] = tok + pos + head
    out["nonembedding"] = out["attn"] + out["mlp"] + out["norms"]
    out["total"] = out["embedding"] + out["nonembedding"]
    return out
