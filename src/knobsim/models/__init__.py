"""Model families: pure ``init(key, shape) -> params`` and ``apply(params, tokens, shape)``.

Parameters are nested dicts; the dotted leaf paths ("blocks.0.attn.w_qkv_D3D") are the knob
names people read. ``knobsim.models.sizing`` turns a knob budget into a shape.
"""

from knobsim.models import linear, mlp, transformer

FAMILIES = {"linear": linear, "mlp": mlp, "transformer": transformer}

__all__ = ["FAMILIES", "linear", "mlp", "transformer"]
