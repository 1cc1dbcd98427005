"""Exact parameter counts from shapes (jax.eval_shape, nothing allocated) and budget -> shape."""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from knobsim.errors import KnobsimError
from knobsim.models import FAMILIES

BYTES_F32 = 4


def leaf_path(path) -> str:
    """A jax key path -> 'blocks.0.attn.w_qkv_D3D'."""
    parts = []
    for k in path:
        parts.append(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))))
    return ".".join(parts)


def family(arch: str):
    try:
        return FAMILIES[arch]
    except KeyError:
        raise KnobsimError(
            f"unknown --arch {arch!r}; choose one of: {', '.join(FAMILIES)}"
        ) from None


def as_shape(arch: str, shape):
    """``arch``'s typed shape from a shape or a dict of its dims (config.json's, or one
    written by hand), or one KnobsimError line naming what is wrong with it."""
    return family(arch).Shape.from_dict(shape)


def param_shapes(arch: str, shape) -> dict[str, tuple[int, ...]]:
    """Leaf path -> shape, from jax.eval_shape(init): no memory is allocated."""
    fam = family(arch)
    init = functools.partial(fam.init, shape=as_shape(arch, shape))
    abstract = jax.eval_shape(init, jax.random.key(0))
    leaves = jax.tree_util.tree_flatten_with_path(abstract)[0]
    return {leaf_path(p): tuple(x.shape) for p, x in leaves}


@dataclasses.dataclass(frozen=True)
class Count:
    total: int  # every knob
    embedding: int  # token lookup (and untied unembedding) tables
    nonembedding: int  # the rest: Kaplan et al.'s N
    by_component: dict  # component -> knobs
    by_leaf: dict  # leaf path -> knobs


def count_params(arch: str, shape) -> Count:
    fam = family(arch)
    by_leaf = {p: int(np.prod(s)) for p, s in param_shapes(arch, shape).items()}
    comp: dict[str, int] = {}
    for p, n in by_leaf.items():
        comp[fam.component(p)] = comp.get(fam.component(p), 0) + n
    emb = sum(n for p, n in by_leaf.items() if fam.is_embedding(p))
    total = sum(by_leaf.values())
    return Count(total, emb, total - emb, comp, by_leaf)


def min_params(arch: str, vocab: int) -> int:
    """Below this many knobs a family cannot be built at all."""
    return family(arch).min_params(vocab)


def shape_for_budget(arch: str, budget: int, vocab: int, seq: int):
    fam = family(arch)
    lo = min_params(arch, vocab)
    if budget < lo:
        hint = "; try --arch linear" if arch != "linear" else ""
        raise KnobsimError(f"--params {budget:,} is below the smallest {arch} ({lo:,} knobs){hint}")
    return fam.size(budget, vocab, seq)


def memory_bytes(arch: str, shape, n_params: int, batch: int, seq: int) -> int:
    """Estimated peak memory of training: params, grads, two Adam moments and the initial
    weights (for drift), plus activations kept for the backward pass, plus 25% for XLA's
    temporaries. An estimate to refuse hopeless runs before allocating, not a promise."""
    state = 5 * n_params * BYTES_F32
    acts = family(arch).activation_floats(as_shape(arch, shape), batch, seq) * BYTES_F32
    return int(1.25 * (state + acts))
