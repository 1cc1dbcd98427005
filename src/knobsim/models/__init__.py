"""Model families: pure ``init(key, shape) -> params`` and ``apply(params, tokens, shape)``.

Parameters are nested dicts; the dotted leaf paths ("blocks.0.attn.w_qkv_D3D") are the knob
names people read. A shape is the family's own frozen dataclass (``family.Shape``, defined
in knobsim.config so that a RunConfig reads back alone: LinearShape, MLPShape,
TransformerShape). ``knobsim.models.sizing`` turns a knob budget into a shape. Every family
is a module with the functions of :class:`Family`; FAMILIES is the registry that the rest of
knobsim looks them up in (no code outside a family switches on its name).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from knobsim.models import linear, mlp, transformer


@runtime_checkable
class Family(Protocol):
    """What a model family provides (each is a module of these functions and its Shape)."""

    Shape: type  # its shape: a frozen dataclass of dims, config.MODEL_SHAPES[arch]

    def init(self, key, shape) -> dict: ...  # params, a nested dict of arrays

    def apply(self, params: dict, tokens_BT, shape): ...  # logits (B, T, V)

    def count(self, shape) -> int: ...  # exact knob count of a shape

    def size(self, budget: int, vocab: int, seq: int): ...  # the Shape nearest a budget

    def min_params(self, vocab: int) -> int: ...  # the smallest model that can be built

    def component(self, path: str) -> str: ...  # a leaf path's component ("attention", ...)

    def is_embedding(self, path: str) -> bool: ...  # a lookup table (not in Kaplan's N)

    def activation_floats(self, shape, batch: int, seq: int) -> int: ...  # for memory

    def describe(self, shape) -> str: ...  # one line for people

    def default_lr(self, n_params: int) -> float: ...  # the peak lr rule of this family

    def lr_multiplier(self, path: str, shape) -> float: ...  # per tensor (muP); 1: none

    def attention_flops(self, shape, seq: int) -> float: ...  # training FLOPs/token beyond 6N


FAMILIES: dict[str, Family] = {"linear": linear, "mlp": mlp, "transformer": transformer}

__all__ = ["FAMILIES", "Family", "linear", "mlp", "transformer"]
