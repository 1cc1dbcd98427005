"""Typed, frozen configuration and the parsing of human-written counts.

Every field carries its unit in a comment. A run's resolved RunConfig is its whole truth:
its ``config.json`` is exactly ``RunConfig.to_dict()``, so a run directory says exactly what
was trained, what it recorded and on how many devices.
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


class _Shape:
    """A model family's shape: a frozen dataclass of its dims. In config.json it is a plain
    object with the same keys (an optional field left at None is left out, so a shape
    without it reads and writes exactly as before it existed)."""

    arch = ""  # the family (knobsim.models.FAMILIES) this is the shape of

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls, d) -> "_Shape":
        """A config.json ``shape`` (or a shape written by hand) -> the typed shape, or one
        KnobsimError line saying which keys are missing, unknown or not whole numbers."""
        if isinstance(d, cls):
            return d
        if not isinstance(d, dict):
            raise KnobsimError(f"shape {d!r} is not a {cls.arch} shape (not a mapping of its dims)")
        fields = dataclasses.fields(cls)
        missing = [f.name for f in fields if f.default is dataclasses.MISSING and f.name not in d]
        unknown = sorted(set(d) - {f.name for f in fields})
        bad = [f.name for f in fields if f.type == "int" and f.name in d
               and (isinstance(d[f.name], bool) or not isinstance(d[f.name], int) or d[f.name] < 0)]
        if missing or unknown or bad:
            why = "; ".join(w for w in (f"missing {', '.join(missing)}" if missing else "",
                                        f"unknown {', '.join(unknown)}" if unknown else "",
                                        f"not whole numbers: {', '.join(bad)}" if bad else "") if w)
            raise KnobsimError(f"shape {d} is not a {cls.arch} shape ({why})")
        return cls(**d)


@dataclasses.dataclass(frozen=True)
class LinearShape(_Shape):
    """models/linear.py: softmax regression on the last ``context`` characters."""

    arch = "linear"
    vocab: int  # characters in the alphabet (V)
    context: int  # characters looked back (N)
    rank: int  # the bottleneck's rank (R); 0 = full rank, each W_i is V x V


@dataclasses.dataclass(frozen=True)
class MLPShape(_Shape):
    """models/mlp.py: Bengio et al.'s (2003) neural language model over characters."""

    arch = "mlp"
    vocab: int  # characters in the alphabet (V)
    context: int  # characters looked back (N)
    d_embed: int  # embedding width per character (E)
    d_hidden: int  # tanh units (H)


@dataclasses.dataclass(frozen=True)
class TransformerShape(_Shape):
    """models/transformer.py: a GPT decoder (head dim = d_model / n_head)."""

    arch = "transformer"
    vocab: int  # characters in the alphabet (V)
    d_model: int  # residual width (D)
    n_layer: int  # blocks (L)
    n_head: int  # attention heads (H); n_head divides d_model
    d_ff: int  # MLP hidden width (F)
    seq: int  # the context the shape was sized for (positions are sinusoids: no knobs)
    mup_base_d: float | None = None  # muP's base width B: hidden matrices' lr x B / d_model
    #                                  (None: the standard parametrisation)


# Each family's shape class, by --arch (the family modules name theirs ``Shape``; a test
# checks that the two agree). Here, below the models, so that a config reads back alone.
MODEL_SHAPES: dict[str, type] = {"linear": LinearShape, "mlp": MLPShape, "transformer": TransformerShape}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which family and which shape; the shape is resolved from a knob budget by sizing."""

    arch: str  # "linear" | "mlp" | "transformer"
    budget: int  # requested number of knobs (parameters)
    shape: LinearShape | MLPShape | TransformerShape  # the resolved shape (MODEL_SHAPES[arch])
    n_params_total: int  # exact count of the resolved shape
    n_params_nonembedding: int

    @staticmethod
    def from_dict(d: dict) -> "ModelConfig":
        if d.get("arch") not in MODEL_SHAPES:
            raise KnobsimError(f"unknown model arch {d.get('arch')!r}; one of {', '.join(MODEL_SHAPES)}")
        return ModelConfig(**{**d, "shape": MODEL_SHAPES[d["arch"]].from_dict(d["shape"])})


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
class WatchConfig:
    """What a watched run records (RunConfig.watch; None there: a run that records no knobs)."""

    every: int = 1  # record knob statistics every this many steps
    knobs_per_tensor: int = 8  # sampled dials per tensor, recorded at every recorded step
    sample_seed: int = 0  # seed of the dial sample (independent of the training seed)
    snapshots: bool = True  # lossless weights at steps 0, 1, 2, 4, ... and the final step
    tensorboard: bool = False  # also write TensorBoard event files (RUN/tensorboard): the one
    #                            place a run decides it


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Where a fine-tune's starting weights come from (RunConfig.finetune; None there: a run
    that starts from its seed's init). Drift is measured from these weights."""

    source: str  # the pre-trained run directory (its params.npz)
    pretrain_language: LanguageConfig  # the language it was trained on

    @staticmethod
    def from_dict(d: dict) -> "FinetuneConfig":
        # config.json before issue 24 named the source "from"
        return FinetuneConfig(source=d["source"] if "source" in d else d["from"],
                              pretrain_language=LanguageConfig.from_dict(d["pretrain_language"]))


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The whole run: config.json is exactly this, serialised (``to_dict``)."""

    language: LanguageConfig
    model: ModelConfig
    optim: OptimConfig
    train: TrainConfig
    dtype: str = "float32"  # compute dtype: "float32" or "bfloat16" (weights stay float32)
    watch: WatchConfig | None = None  # knob records, dials, snapshots, TensorBoard; None: none
    devices: int | None = None  # devices the batch is split over (core/parallel.py); None: all
    finetune: FinetuneConfig | None = None  # a fine-tune's source run; None: trained from init

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["model"]["shape"] = self.model.shape.to_dict()
        return d

    @staticmethod
    def from_dict(d: dict) -> "RunConfig":
        """Read a config.json back. Run directories written before issue 24 kept the watch
        settings without ``tensorboard`` and a loose top-level ``tensorboard`` beside them:
        they read into the same RunConfig (a run that wrote TensorBoard files without
        recording knobs has no such RunConfig; it reads as one that records nothing)."""
        watch = d.get("watch")
        if watch is not None:
            watch = WatchConfig(**{"tensorboard": bool(d.get("tensorboard", False)), **watch})
        ft = d.get("finetune")
        return RunConfig(
            language=LanguageConfig.from_dict(d["language"]),
            model=ModelConfig.from_dict(d["model"]),
            optim=OptimConfig(**d["optim"]),
            train=TrainConfig(**d["train"]),
            dtype=d.get("dtype", "float32"),
            watch=watch,
            devices=d.get("devices"),
            finetune=None if ft is None else FinetuneConfig.from_dict(ft),
        )
