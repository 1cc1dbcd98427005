"""knobsim: a laptop-sized laboratory for parameters ("knobs").

Train JAX models of 20 to tens of millions of knobs on synthetic text whose entropy floor
is known exactly; watch loss scale with the number of knobs and the knobs move.
"""

__version__ = "0.1.0"
