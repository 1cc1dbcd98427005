"""Typed, frozen configuration and the parsing of human-written counts.

Every field carries its unit in a comment. The resolved config of a run is written to its
``config.json`` (``dataclasses.asdict``), so a run directory says exactly what was trained.
"""

from __future__ import annotations

import dataclasses
import math
import re

from knobsim.errors import KnobsimError

_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
_COUNT_RE = re.compile(r"^\s*([+-]?[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmbgt]?)\s*$", re.I)


def parse_count(text: str | int | float, what: str = "count", minimum: int = 1) -> int:
    """Parse '1e5', '100k', '2.5M', '100000', '1_000' into an int >= ``minimum``.

    Raises KnobsimError with one line naming the problem and the accepted forms.
    """
    if isinstance(text, bool):
        raise KnobsimError(f"{what} must be a number, got {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = str(text).replace("_", "").replace(",", "")
        m = _COUNT_RE.match(s)
        if not m:
            raise KnobsimError(
                f"{str(text)!r} is not a number; write it like 1e5, 100k, 2.5M or 100000"
            )
        value = float(m.group(1)) * _SUFFIX[m.group(2).lower()]
    if not math.isfinite(value) or value < minimum:
        raise KnobsimError(f"{what} must be at least {minimum:,}, got {text}; e.g. 1e5 or 100k")
    rounded = round(value)
    if abs(rounded - value) > 1e-6 * max(1.0, value):
        raise KnobsimError(f"{what} must be a whole number, got {text}")
    return int(rounded)


def format_count(n: float) -> str:
    """124439808 -> '124.4M'; 756 -> '756'."""
    n = float(n)
    for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            v = n / div
            return f"{v:.3g}{unit}" if v < 100 else f"{v:.0f}{unit}"
    return f"{n:.0f}"


@dataclasses.dataclass(frozen=True)
class LanguageConfig:
    """The synthetic language: words spelled in letters, Zipfian, a Markov chain over words.

    The defaults make a *scale-free* language (docs/language.md): Zipf 2 over 131,072 words
    with word length tied to surprisal, so that the ideal learner's excess loss over the floor
    is a power law in the number of words it knows. ``PRESETS["english"]`` is the old,
    English-like default, on which even a perfect learner's scaling fit misses the floor.
    """

    seed: int = 0  # the language's own seed: runs with the same seed share one language
    n_words: int = 131_072  # lexicon size (distinct words); 2^17 keeps the cut-off tail
    #                         beyond rank 3000 small (it is 2% of the mass past rank 3000)
    zipf: float = 2.0  # tail exponent s: word frequency ~ (rank + zipf_offset)^-s
    zipf_offset: float = 2.7  # Mandelbrot's q (2.7 fits English): flattens the head only
    n_successors: int = 4  # favourite successors of each word
    successor_weight: float = 0.4  # P(next word is drawn from the favourites) vs the unigram
    syllables_base: float = 1.0  # mean syllables of the most frequent word
    syllables_per_decade: float = 1.2  # extra syllables per decade of rank: rarer words are
    #   longer, so the cost of spelling an unknown word grows with its surprisal (2 x ln 10
    #   nats per decade at Zipf 2) and knowing a rare word is worth as much as a frequent one

    @staticmethod
    def from_dict(d: dict) -> "LanguageConfig":
        """Read a config.json entry; keys older runs lack take the English-like values they
        were made with (before the scale-free default, the lexicon rule was the English one)."""
        old = dataclasses.asdict(PRESETS["english"])
        return LanguageConfig(**{**{k: old[k] for k in ("syllables_base", "syllables_per_decade")
                                    if k not in d}, **d})


PRESETS: dict[str, LanguageConfig] = {
    # The default: a scale-free language (see LanguageConfig).
    "scale-free": LanguageConfig(),
    # knobsim's first default, English-like: Zipf 1.2 over 4,096 words, lengths growing only
    # 0.4 syllables per decade. Kept as the lesson: its ideal learner's curve is not a power
    # law, so even a perfect learner's E-free fit puts the floor at 0.
    "english": LanguageConfig(n_words=4096, zipf=1.2, zipf_offset=2.7, n_successors=4,
                              successor_weight=0.6, syllables_base=1.8,
                              syllables_per_decade=0.4),
}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which family and which shape; the shape is resolved from a knob budget by sizing."""

    arch: str  # "linear" | "mlp" | "transformer"
    budget: int  # requested number of knobs (parameters)
    shape: dict  # the resolved shape (family-specific dims)
    n_params_total: int  # exact count of the resolved shape
    n_params_nonembedding: int


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup, cosine decay and global-norm clipping."""

    lr: float  # peak learning rate
    warmup_steps: int  # linear warmup from 0 to lr
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    b1: float = 0.9
    b2: float = 0.95  # 0.95 as in GPT-3 / nanoGPT: steadier on short runs than 0.999
    eps: float = 1e-8
    weight_decay: float = 0.1  # decoupled; applied to matrices only (not biases/norms/gains)
    clip_norm: float = 1.0  # global gradient-norm clip


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How long and on what: steps x batch x seq tokens."""

    seed: int = 0  # init and data-sampling seed (the language has its own)
    # 16 x 64 characters per step: at knobsim's sizes a run is limited by optimizer steps,
    # not context (the word chain is first order; 64 characters hold ~14 words). Measured,
    # 1e5 knobs on 2M tokens, default language: eval loss 0.691 at 16 x 64, 0.861 at 32 x 128.
    batch: int = 16  # sequences per step
    seq: int = 64  # characters per sequence (context length)
    steps: int = 100  # optimizer steps
    chunk: int = 25  # steps per jitted call (lax.scan); the host sees chunks only
    eval_every: int = 100  # steps between evaluations (rounded to chunk boundaries)
    eval_seqs: int = 256  # fixed eval set of sequences, drawn from the language's own stream
    ckpt_every: int = 0  # steps between checkpoints (a multiple of chunk); 0 = start and end only
    keep: int = 2  # checkpoints kept (the newest)
    pool_tokens: int = 0  # finite-data mode: a fixed pool of this many tokens repeated in
    #                       epochs (0 = a fresh sample every step, data effectively unlimited)

    @property
    def tokens_per_step(self) -> int:
        return self.batch * self.seq

    @property
    def tokens(self) -> int:
        return self.steps * self.tokens_per_step


@dataclasses.dataclass(frozen=True)
class RunConfig:
    language: LanguageConfig
    model: ModelConfig
    optim: OptimConfig
    train: TrainConfig
    dtype: str = "float32"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "RunConfig":
        return RunConfig(
            language=LanguageConfig.from_dict(d["language"]),
            model=ModelConfig(**d["model"]),
            optim=OptimConfig(**d["optim"]),
            train=TrainConfig(**d["train"]),
            dtype=d.get("dtype", "float32"),
        )
