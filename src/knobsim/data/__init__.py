"""Synthetic languages with an exactly known entropy floor, and their on-device sampler."""

from knobsim.data.language import Language, build_language
from knobsim.data.sampler import decode, encode, sample_batch

__all__ = ["Language", "build_language", "sample_batch", "decode", "encode"]
