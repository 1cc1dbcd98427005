"""The zoo: published language models, their exact parameter counts, memory and compute.

Every count here is computed from the architecture through the one counting path,
:func:`knobsim.models.counting.count_decoder`; nothing is typed in. Where a released
checkpoint exists, its exact parameter count (the sum of its tensor sizes) is kept beside
the row so the tests can check the computation against it to the parameter.

Rows that have no published architecture (GPT-4, "frontier" models) are kept apart as
reported estimates, with no breakdown; the brain's neurons and synapses are a reference,
not a parameter count.

Conventions:
  * N is the *total* count (embeddings included, as Hoffmann et al. 2022 count it). The
    embedding / non-embedding split follows ``counting`` (Kaplan et al. 2020 leave the
    embedding out of their N).
  * Memory is weights only (no activations, no KV cache). Training with AdamW in fp32
    needs weights + gradients + two moments = 16 bytes per parameter.
  * Training compute is C = 6·N·D FLOP (Kaplan et al. 2020, §2.1: 2N per token forward,
    4N backward; attention's context-dependent FLOPs are left out).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Literal

from knobsim.errors import KnobsimError
from knobsim.models.counting import DecoderSpec, count_decoder

# Bytes per parameter. AdamW in fp32 keeps weights, gradients and the two moment
# estimates m and v, 4 bytes each (Rajbhandari et al. 2020, ZeRO, §3.1 count the same
# four tensors; mixed precision there adds copies, we keep the plain fp32 case).
BYTES_FP32 = 4
BYTES_BF16 = 2
BYTES_ADAMW_FP32 = 16

# Compute-optimal training tokens per parameter (Hoffmann et al. 2022, "Chinchilla",
# Table 3: about 20 tokens per parameter across their fits).
CHINCHILLA_TOKENS_PER_PARAM = 20

# ASSUMPTION, not a measurement: the fraction of this machine's measured matmul peak a
# whole training step would sustain. Large GPU runs report 0.38-0.43 (Llama 3 Herd paper,
# Table 4); knobsim has no measured MFU yet, so 0.4 stands in. Swap it in `throughput`.
ASSUMED_MFU = 0.4


# --------------------------------------------------------------------------------------
# The rows


@dataclasses.dataclass(frozen=True)
class Model:
    """A published model whose architecture is public, so its count can be computed."""

    key: str  # lookup name: `knobsim zoo gpt2-small`
    name: str  # display name
    family: str  # rows of one family are printed together
    year: int  # first release
    spec: DecoderSpec  # the architecture: the only input to the count
    published: str  # the count as its paper or model card states it ("117M")
    published_params: float  # the same figure as a number (what the Δ column compares to)
    official: int | None  # exact count of the released weights; None = never released
    official_source: str  # where `official` comes from
    train_tokens: float | None  # published pre-training tokens; None = not published
    tokens_source: str  # where `train_tokens` comes from
    sources: tuple[str, ...]  # paper(s) and config the architecture comes from
    notes: tuple[str, ...] = ()  # why a published figure differs, what had to be decided
    paper_embedding: int | None = None  # exact counts printed in the paper, if any
    paper_nonembedding: int | None = None
    aliases: tuple[str, ...] = ()  # other names people type (Hugging Face ids, ...)


KIND_LABELS = {
    "estimate": "reported estimate, no published architecture",
    "knobsim": "knobsim's own model family at this size",
    "biology": "biological reference, not comparable one to one",
}


@dataclasses.dataclass(frozen=True)
class Reported:
    """A figure without a published architecture: an estimate, a pointer, or biology."""

    key: str
    name: str
    kind: Literal["estimate", "knobsim", "biology"]
    figure: str  # as printed ("~1.76T")
    low: float  # the figure as numbers (a range where the explainer gives one)
    high: float
    unit: str  # "parameters", "neurons", "synapses"
    source: str
    note: str = ""
    command: str = ""  # for knobsim's own families: the command that trains one
    aliases: tuple[str, ...] = ()


# Architecture presets shared by a family; each row below adds its sizes.

# GPT-2 and GPT-3: learned positions, tied unembedding, biases everywhere, LayerNorm
# (pre-LN with a final LayerNorm), MLP 4·d_model. HF openai-community/gpt2 config.json:
# vocab_size 50257, n_positions 1024.
_GPT2 = dict(vocab=50257, context=1024)
# GPT-3 (Brown et al. 2020, §2.1): "the same model and architecture as GPT-2", context
# 2048, d_ff = 4·d_model; alternating dense and banded sparse attention adds no weights.
_GPT3 = dict(vocab=50257, context=2048)
# Llama 3 (Llama Team 2024, "The Llama 3 Herd of Models", arXiv:2407.21783, Table 3; HF
# meta-llama/Llama-3.1-8B config.json): vocab 128256, rotary positions, RMSNorm, SwiGLU,
# GQA with 8 KV heads, no biases, max_position_embeddings 131072.
_LLAMA3 = dict(
    vocab=128256, context=131072, n_kv_head=8, gated_mlp=True, learned_pos=False,
    attn_bias=False, mlp_bias=False, norm="rmsnorm",
)
# Gemma (Gemma Team 2024, arXiv:2403.08295, Table 1; HF google/gemma-2b config.json):
# released vocab 256000, head_dim 256, GeGLU, RMSNorm, rotary, tied, context 8192.
_GEMMA = dict(
    vocab=256000, context=8192, head_dim=256, gated_mlp=True, learned_pos=False,
    attn_bias=False, mlp_bias=False, norm="rmsnorm", tied_embeddings=True,
)

_SRC_GPT2 = (
    "Radford et al. 2019, Language Models are Unsupervised Multitask Learners, Table 2",
    "HF openai-community/gpt2* config.json (n_embd, n_layer, n_head, n_positions 1024, "
    "vocab_size 50257)",
    "openai/gpt-2 README.md (corrected counts 124M/355M/774M/1558M)",
)
_NOTE_GPT2 = (
    "The GPT-2 paper's 117M/345M/762M/1542M were miscounted: the openai/gpt-2 README says "
    "'our original parameter counts were wrong due to an error' and now gives "
    "124M/355M/774M/1558M, which the released checkpoints match exactly. 117M is GPT-1's "
    "count; GPT-2 small adds a larger vocabulary (50,257 vs 40,478), twice the context "
    "and a final LayerNorm: exactly +7,905,024."
)
_SRC_GPT3 = (
    "Brown et al. 2020, Language Models are Few-Shot Learners, arXiv:2005.14165, "
    "Table 2.1 and §2.1",
)
_NOTE_GPT3 = "Weights never released; the paper rounds its counts."
_TOKENS_GPT3 = "Brown et al. 2020, §2.2 and Table 2.1: all sizes trained on 300B tokens"
_SRC_LLAMA31 = (
    "Llama Team 2024, The Llama 3 Herd of Models, arXiv:2407.21783, Table 3",
    "HF meta-llama/Llama-3.1-{8B,70B,405B} config.json",
)
_SRC_LLAMA32 = (
    "Meta 2024, Llama 3.2 model card (1.23B, 3.21B; pre-trained on up to 9T tokens)",
    "HF meta-llama/Llama-3.2-{1B,3B} config.json (tie_word_embeddings true)",
)
_OFFICIAL_HF = "Hugging Face safetensors metadata of the released checkpoint (sum of tensors)"


def _gpt3(key: str, name: str, published: str, n: float, L: int, d: int, h: int, hd: int,
          note: str = "") -> Model:
    return Model(
        key=key, name=name, family="GPT-3", year=2020,
        spec=DecoderSpec(d_model=d, n_layer=L, n_head=h, head_dim=hd, d_ff=4 * d, **_GPT3),
        published=published, published_params=n, official=None,
        official_source="weights never released", train_tokens=300e9,
        tokens_source=_TOKENS_GPT3, sources=_SRC_GPT3,
        notes=(_NOTE_GPT3, note) if note else (_NOTE_GPT3,),
    )


MODELS: tuple[Model, ...] = (
    Model(
        key="gpt1", name="GPT-1", family="GPT-1", year=2018,
        # Post-LN blocks (LayerNorm after each residual add) and no final LayerNorm.
        spec=DecoderSpec(vocab=40478, d_model=768, n_layer=12, n_head=12, d_ff=3072,
                         context=512, final_norm=False),
        published="117M", published_params=117e6, official=116_534_784,
        official_source="HF openai-community/openai-gpt (num_parameters)",
        train_tokens=None,
        tokens_source="not published (BooksCorpus, 100 epochs of 64 x 512-token batches)",
        sources=(
            "Radford et al. 2018, Improving Language Understanding by Generative "
            "Pre-Training, §4.1 (12 layers, 768 wide, 12 heads, 3072 MLP, 512 tokens)",
            "HF openai-community/openai-gpt config.json (vocab_size 40478, n_positions 512)",
            "Radford et al. 2019, Table 2 (the 117M figure)",
        ),
        notes=("Post-LN blocks (LayerNorm after each residual add, as in Vaswani et al. "
               "2017): no final LayerNorm, so 1,536 fewer than a pre-LN count.",),
        aliases=("gpt", "gpt-1", "openai-gpt", "openai-community/openai-gpt"),
    ),
    Model(
        key="gpt2-small", name="GPT-2 small", family="GPT-2", year=2019,
        spec=DecoderSpec(d_model=768, n_layer=12, n_head=12, d_ff=3072, **_GPT2),
        published="117M", published_params=117e6, official=124_439_808,
        official_source=_OFFICIAL_HF, train_tokens=None,
        tokens_source="not published (WebText, 40 GB)", sources=_SRC_GPT2, notes=(_NOTE_GPT2,),
        aliases=("gpt2", "gpt2-124m", "openai-community/gpt2"),
    ),
    Model(
        key="gpt2-medium", name="GPT-2 medium", family="GPT-2", year=2019,
        spec=DecoderSpec(d_model=1024, n_layer=24, n_head=16, d_ff=4096, **_GPT2),
        published="345M", published_params=345e6, official=354_823_168,
        official_source=_OFFICIAL_HF, train_tokens=None,
        tokens_source="not published (WebText, 40 GB)", sources=_SRC_GPT2, notes=(_NOTE_GPT2,),
        aliases=("gpt2-355m", "openai-community/gpt2-medium"),
    ),
    Model(
        key="gpt2-large", name="GPT-2 large", family="GPT-2", year=2019,
        spec=DecoderSpec(d_model=1280, n_layer=36, n_head=20, d_ff=5120, **_GPT2),
        published="762M", published_params=762e6, official=774_030_080,
        official_source=_OFFICIAL_HF, train_tokens=None,
        tokens_source="not published (WebText, 40 GB)", sources=_SRC_GPT2, notes=(_NOTE_GPT2,),
        aliases=("gpt2-774m", "openai-community/gpt2-large"),
    ),
    Model(
        key="gpt2-xl", name="GPT-2 XL", family="GPT-2", year=2019,
        spec=DecoderSpec(d_model=1600, n_layer=48, n_head=25, d_ff=6400, **_GPT2),
        published="1542M", published_params=1542e6, official=1_557_611_200,
        official_source=_OFFICIAL_HF, train_tokens=None,
        tokens_source="not published (WebText, 40 GB)", sources=_SRC_GPT2, notes=(_NOTE_GPT2,),
        aliases=("gpt2-1.5b", "gpt2-1558m", "openai-community/gpt2-xl"),
    ),
    # GPT-3, Table 2.1: n_params, n_layers, d_model, n_heads, d_head.
    _gpt3("gpt3-small", "GPT-3 Small", "125M", 125e6, 12, 768, 12, 64),
    _gpt3("gpt3-medium", "GPT-3 Medium", "350M", 350e6, 24, 1024, 16, 64),
    _gpt3("gpt3-large", "GPT-3 Large", "760M", 760e6, 24, 1536, 16, 96),
    _gpt3(
        # Table 2.1 prints 24 heads of 128, i.e. 3072 wide, but d_model is 2048. Attention
        # of width d_model gives the published 1.3B (24 x 128 would give 1.52B), and how
        # d_model is split into heads does not change the count: we use 16 x 128.
        "gpt3-xl", "GPT-3 XL", "1.3B", 1.3e9, 24, 2048, 16, 128,
        note="Table 2.1 lists 24 heads x 128 = 3072 != d_model 2048; attention of width "
        "d_model reproduces 1.3B (24 x 128 would give 1.52B), so we count 16 x 128.",
    ),
    _gpt3("gpt3-2.7b", "GPT-3 2.7B", "2.7B", 2.7e9, 32, 2560, 32, 80),
    _gpt3("gpt3-6.7b", "GPT-3 6.7B", "6.7B", 6.7e9, 32, 4096, 32, 128),
    _gpt3(
        # Table 2.1 prints d_model 5140: a typo, since 40 heads x 128 = 5120.
        "gpt3-13b", "GPT-3 13B", "13B", 13e9, 40, 5120, 40, 128,
        note="Table 2.1 prints d_model 5140, a typo: 40 heads x 128 = 5120, which gives 13B.",
    ),
    dataclasses.replace(
        _gpt3("gpt3-175b", "GPT-3 175B", "175B", 175e9, 96, 12288, 96, 128),
        aliases=("gpt3", "gpt-3"),
    ),
    Model(
        key="llama-3.1-8b", name="Llama 3.1 8B", family="Llama 3.1", year=2024,
        spec=DecoderSpec(d_model=4096, n_layer=32, n_head=32, d_ff=14336,
                         tied_embeddings=False, **_LLAMA3),
        published="8B", published_params=8e9, official=8_030_261_248,
        official_source=_OFFICIAL_HF, train_tokens=15e12,
        tokens_source="Llama 3.1 model card: ~15T tokens", sources=_SRC_LLAMA31,
        aliases=("meta-llama/Llama-3.1-8B", "llama3.1-8b"),
    ),
    Model(
        key="llama-3.1-70b", name="Llama 3.1 70B", family="Llama 3.1", year=2024,
        spec=DecoderSpec(d_model=8192, n_layer=80, n_head=64, d_ff=28672,
                         tied_embeddings=False, **_LLAMA3),
        published="70B", published_params=70e9, official=70_553_706_496,
        official_source=_OFFICIAL_HF, train_tokens=15e12,
        tokens_source="Llama 3.1 model card: ~15T tokens", sources=_SRC_LLAMA31,
        aliases=("meta-llama/Llama-3.1-70B", "llama3.1-70b"),
    ),
    Model(
        key="llama-3.1-405b", name="Llama 3.1 405B", family="Llama 3.1", year=2024,
        spec=DecoderSpec(d_model=16384, n_layer=126, n_head=128, d_ff=53248,
                         tied_embeddings=False, **_LLAMA3),
        published="405B", published_params=405e9, official=405_853_388_800,
        official_source=_OFFICIAL_HF, train_tokens=15.6e12,
        tokens_source="Llama 3 Herd paper, §3 (405B pre-trained on 15.6T tokens)",
        sources=_SRC_LLAMA31,
        aliases=("meta-llama/Llama-3.1-405B", "llama3.1-405b"),
    ),
    Model(
        key="llama-3.2-1b", name="Llama 3.2 1B", family="Llama 3.2", year=2024,
        spec=DecoderSpec(d_model=2048, n_layer=16, n_head=32, d_ff=8192,
                         tied_embeddings=True, **_LLAMA3),
        published="1.23B", published_params=1.23e9, official=1_235_814_400,
        official_source=_OFFICIAL_HF, train_tokens=9e12,
        tokens_source="Llama 3.2 model card: up to 9T tokens", sources=_SRC_LLAMA32,
        notes=("The model card's 1.23B truncates 1,235,814,400 (1.236B).",),
        aliases=("meta-llama/Llama-3.2-1B", "llama3.2-1b"),
    ),
    Model(
        key="llama-3.2-3b", name="Llama 3.2 3B", family="Llama 3.2", year=2024,
        spec=DecoderSpec(d_model=3072, n_layer=28, n_head=24, d_ff=8192,
                         tied_embeddings=True, **_LLAMA3),
        published="3.21B", published_params=3.21e9, official=3_212_749_824,
        official_source=_OFFICIAL_HF, train_tokens=9e12,
        tokens_source="Llama 3.2 model card: up to 9T tokens", sources=_SRC_LLAMA32,
        aliases=("meta-llama/Llama-3.2-3B", "llama3.2-3b"),
    ),
    Model(
        key="gemma-2b", name="Gemma 2B", family="Gemma", year=2024,
        # Multi-query attention: 8 query heads share one K/V head; MLP 16384 per branch
        # (the paper's "feedforward hidden dims 32768" counts gate and up together).
        spec=DecoderSpec(d_model=2048, n_layer=18, n_head=8, n_kv_head=1, d_ff=16384,
                         **_GEMMA),
        published="2.51B", published_params=524_550_144 + 1_981_884_416,
        official=2_506_172_416, official_source=_OFFICIAL_HF, train_tokens=3e12,
        tokens_source="Gemma Team 2024, §3: 2B trained on 3T tokens",
        sources=(
            "Gemma Team 2024, Gemma: Open Models Based on Gemini Research and Technology, "
            "arXiv:2403.08295, Tables 1-2",
            "HF google/gemma-2b config.json (vocab_size 256000, head_dim 256, "
            "num_key_value_heads 1, intermediate_size 16384)",
        ),
        notes=("The paper's Table 2 counts embeddings with vocabulary 256,128 (its Table 1); "
               "the released checkpoint has 256,000 rows, exactly 128 x 2048 = 262,144 "
               "fewer. The non-embedding count matches the paper to the parameter.",),
        paper_embedding=524_550_144, paper_nonembedding=1_981_884_416,
        aliases=("google/gemma-2b", "gemma-1-2b", "gemma1-2b"),
    ),
    Model(
        key="gemma-2-2b", name="Gemma 2 2B", family="Gemma 2", year=2024,
        # "Sandwich" norms: RMSNorm before and after both attention and MLP.
        spec=DecoderSpec(d_model=2304, n_layer=26, n_head=8, n_kv_head=4, d_ff=9216,
                         post_norms=True, **_GEMMA),
        published="2.61B", published_params=590_118_912 + 2_024_517_888,
        official=2_614_341_888, official_source=_OFFICIAL_HF, train_tokens=2e12,
        tokens_source="Gemma Team 2024 (Gemma 2), §3.1: 2B trained on 2T tokens",
        sources=(
            "Gemma Team 2024, Gemma 2: Improving Open Language Models at a Practical Size, "
            "arXiv:2408.00118, Tables 1-2",
            "HF google/gemma-2-2b config.json (hidden_size 2304, num_hidden_layers 26, "
            "num_key_value_heads 4, head_dim 256, intermediate_size 9216)",
        ),
        notes=("The paper's Table 2 counts embeddings with vocabulary 256,128; the "
               "released checkpoint has 256,000 rows, exactly 128 x 2304 = 294,912 fewer. "
               "The non-embedding count matches the paper to the parameter.",),
        paper_embedding=590_118_912, paper_nonembedding=2_024_517_888,
        aliases=("google/gemma-2-2b", "gemma2-2b"),
    ),
)

REPORTED: tuple[Reported, ...] = (
    Reported(
        key="gpt-4", name="GPT-4 (2023)", kind="estimate", figure="~1.76T",
        low=1.76e12, high=1.76e12, unit="parameters",
        source="OpenAI 2023, GPT-4 Technical Report (arXiv:2303.08774) discloses no size. "
        "1.76T = 8 x 220B is G. Hotz's June 2023 claim; SemiAnalysis (July 2023) reported "
        "~1.8T. Neither is confirmed.",
        note="Reportedly a mixture of experts: each token would use only part of the "
        "weights, so its compute is not 6 x 1.76T per token.",
        aliases=("gpt4",),
    ),
    Reported(
        key="frontier", name="Frontier models (2024)", kind="estimate", figure="~10T",
        low=1e13, high=1e13, unit="parameters",
        source="The explainer's own estimate; no lab has published an architecture or count.",
        aliases=("frontier-models",),
    ),
    Reported(
        key="linear", name="Linear model", kind="knobsim", figure="20-200",
        low=20, high=200, unit="parameters",
        source="The explainer: 'a simple linear regression model ... 20 to 200 parameters'.",
        note="knobsim's own `linear` family trains at this size.",
        command="knobsim train --arch linear --params 200",
        aliases=("linear-model",),
    ),
    Reported(
        key="early-dnn", name="Early deep network", kind="knobsim", figure="~200,000",
        low=2e5, high=2e5, unit="parameters",
        source="The explainer: 'early deep neural networks had about 200,000 parameters'.",
        note="knobsim's own `mlp` family trains at this size.",
        command="knobsim train --arch mlp --params 2e5",
        aliases=("dnn", "mlp"),
    ),
    Reported(
        key="brain-neurons", name="Human brain: neurons", kind="biology", figure="~86 billion",
        low=86e9, high=86e9, unit="neurons",
        source="Azevedo et al. 2009, J. Comp. Neurol. 513(5):532-541: 86.1 +- 8.1 billion.",
        note="A neuron is a cell, not a weight: not comparable one to one.",
        aliases=("brain", "neurons"),
    ),
    Reported(
        key="brain-synapses", name="Human brain: synapses", kind="biology",
        figure="~100 trillion", low=1e14, high=1e14, unit="synapses",
        source="Order of magnitude; Tang et al. 2001, Synapse 41(3):258-273 count ~1.5e14 "
        "in the neocortex alone.",
        note="A synapse is a living, changing structure with many state variables, not one "
        "stored number: not comparable one to one.",
        aliases=("synapses",),
    ),
)


# --------------------------------------------------------------------------------------
# Lookup


def _norm_name(name: str) -> str:
    # "Llama-3.1-8B", "llama 3.1 8b" and "llama3.1_8b" are one name.
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _names() -> dict[str, Model | Reported]:
    table: dict[str, Model | Reported] = {}
    for row in (*MODELS, *REPORTED):
        for n in (row.key, row.name, *row.aliases):
            table.setdefault(_norm_name(n), row)
            if "/" in n:  # a Hugging Face id also matches without its owner
                table.setdefault(_norm_name(n.split("/", 1)[1]), row)
    return table


def names() -> list[str]:
    """The keys `find` accepts (aliases aside), in table order."""
    return [r.key for r in (*MODELS, *REPORTED)]


def find(name: str) -> Model | Reported:
    """A row by name, case- and punctuation-insensitive; a clear error with a suggestion."""
    table = _names()
    row = table.get(_norm_name(name))
    if row is not None:
        return row
    keys = names()
    close = difflib.get_close_matches(name.lower(), keys, n=3, cutoff=0.5)
    if not close:  # compare punctuation-free forms too: "lama318b" vs "llama318b"
        norm = {_norm_name(k): k for k in keys}
        hit = difflib.get_close_matches(_norm_name(name), list(norm), n=3, cutoff=0.5)
        close = [norm[h] for h in hit]
    if close:
        quoted = [f"'{c}'" for c in close]
        alts = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
        hint = f"did you mean {alts}? "
    else:
        hint = ""
    raise KnobsimError(f"unknown model '{name}': {hint}`knobsim zoo` lists them all")


# --------------------------------------------------------------------------------------
# Custom architectures (`knobsim count`)


def _divisors_near(n: int, target: int, k: int = 3) -> list[int]:
    divs = [d for d in range(1, n + 1) if n % d == 0]
    return sorted(sorted(divs, key=lambda d: (abs(d - target), d))[:k])


def make_spec(**fields) -> DecoderSpec:
    """A DecoderSpec from user input, with one clear error line naming problem and fix.

    Field names are DecoderSpec's; the messages use the words of `knobsim count`.
    """
    words = {"vocab": "vocab", "d_model": "d_model", "n_layer": "layers", "n_head": "heads",
             "d_ff": "d_ff", "context": "context", "n_kv_head": "kv_heads",
             "head_dim": "head_dim"}
    for f, word in words.items():
        v = fields.get(f)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise KnobsimError(f"{word} must be a positive integer, got {v!r}")
    d, h = fields.get("d_model"), fields.get("n_head")
    if d and h and fields.get("head_dim") is None and d % h:
        near = ", ".join(map(str, _divisors_near(d, h)))
        raise KnobsimError(
            f"heads={h} does not divide d_model={d}: use a divisor of {d} (e.g. {near}) "
            "or give head_dim explicitly"
        )
    kv = fields.get("n_kv_head")
    if h and kv and h % kv:
        near = ", ".join(map(str, _divisors_near(h, kv)))
        raise KnobsimError(f"kv_heads={kv} does not divide heads={h}: use e.g. {near}")
    try:
        return DecoderSpec(**fields)
    except (TypeError, ValueError) as e:  # anything the checks above did not foresee
        raise KnobsimError(f"bad architecture: {e}") from None


# --------------------------------------------------------------------------------------
# Memory and compute


def memory_bytes(n_params: int | float) -> dict[str, float]:
    """Bytes to hold the weights, and to train them with AdamW in fp32 (no activations)."""
    return {
        "fp32": BYTES_FP32 * n_params,
        "bf16": BYTES_BF16 * n_params,
        "adamw_fp32_train": BYTES_ADAMW_FP32 * n_params,
    }


def train_flop(n_params: int | float, tokens: float) -> float:
    """C = 6·N·D (Kaplan et al. 2020, §2.1)."""
    return 6.0 * n_params * tokens


def chinchilla_tokens(n_params: int | float) -> float:
    return CHINCHILLA_TOKENS_PER_PARAM * n_params


@dataclasses.dataclass(frozen=True)
class Throughput:
    """Sustained training FLOP/s assumed for this machine: measured peak x MFU."""

    peak_flops: float  # measured fp32 matmul peak (knobsim.hardware)
    mfu: float  # fraction of that peak a training step sustains
    mfu_source: str  # "assumed ..." or where a measured MFU came from

    @property
    def flops(self) -> float:
        return self.peak_flops * self.mfu


def throughput(mfu: float | None = None) -> Throughput:
    """This machine's measured peak times an MFU: the one place to swap in a measured MFU.

    ``mfu`` overrides the assumption (``knobsim zoo --mfu``).
    """
    from knobsim import hardware  # measures once per machine (about a second), then cached

    if mfu is not None:
        return Throughput(hardware.peak_flops(), mfu, "given with --mfu")
    seen = hardware.measured_mfu()  # recorded by `knobsim train` runs on this machine
    if seen is not None:
        return Throughput(hardware.peak_flops(), seen["mfu"],
                          f"measured: knobsim's MFU training {seen['n_params']:,} knobs here")
    return Throughput(hardware.peak_flops(), ASSUMED_MFU,
                      "assumed, not measured: train a model here to measure it")


def seconds_to_train(flop: float, tp: Throughput) -> float:
    return flop / tp.flops


# --------------------------------------------------------------------------------------
# One row, computed


def spec_dict(spec: DecoderSpec) -> dict:
    """The architecture as plain JSON, with derived head_dim and kv heads filled in."""
    out = dataclasses.asdict(spec)
    out["head_dim"] = spec.hd
    out["n_kv_head"] = spec.kv_heads
    return out


def spec_summary(spec: DecoderSpec) -> str:
    """A compact one-line architecture: 'L32 d4096 h32/kv8 ff14336 SwiGLU'."""
    heads = f"h{spec.n_head}" + (f"/kv{spec.kv_heads}" if spec.kv_heads != spec.n_head else "")
    hd = f"x{spec.hd}" if spec.hd * spec.n_head != spec.d_model else ""
    return f"L{spec.n_layer} d{spec.d_model} {heads}{hd} ff{spec.d_ff}" + (
        " gated" if spec.gated_mlp else ""
    )


def count_report(spec: DecoderSpec, tokens: float | None = None,
                 tp: Throughput | None = None) -> dict:
    """Counts, memory and compute of one architecture, as JSON-ready numbers.

    ``tokens``: a training-token count for the compute figures (besides 20 per parameter);
    ``tp``: the throughput for times on this machine (omitted when None).
    """
    counts = count_decoder(spec)
    n = counts["total"]
    compute: dict = {"flop_per_token": 6 * n}
    budgets = {"chinchilla": chinchilla_tokens(n)}
    if tokens is not None:
        budgets = {"given": tokens, **budgets}
    for label, d in budgets.items():
        c = train_flop(n, d)
        entry = {"tokens": d, "flop": c}
        if tp is not None:
            entry["seconds_here"] = seconds_to_train(c, tp)
        compute[label] = entry
    out = {
        "architecture": spec_dict(spec),
        "params": {
            "total": n,
            "embedding": counts["embedding"],
            "nonembedding": counts["nonembedding"],
            "breakdown": {k: counts[k] for k in (
                "token_embedding", "position_embedding", "lm_head", "attn", "mlp", "norms")},
        },
        "memory_bytes": memory_bytes(n),
        "compute": compute,
    }
    if tp is not None:
        out["this_machine"] = dataclasses.asdict(tp) | {"sustained_flops": tp.flops}
    return out


def model_report(m: Model, tp: Throughput | None = None) -> dict:
    """Everything the zoo says about one published model, as JSON-ready data."""
    rep = count_report(m.spec, tokens=m.train_tokens, tp=tp)
    n = rep["params"]["total"]
    if "given" in rep["compute"]:
        rep["compute"]["published"] = rep["compute"].pop("given")
    else:
        rep["compute"]["published"] = None
    rep["compute"]["published_tokens_source"] = m.tokens_source
    published = {
        "figure": m.published,
        "params": m.published_params,
        "relative_difference": n / m.published_params - 1,
    }
    if m.paper_embedding is not None:
        published |= {"paper_embedding": m.paper_embedding,
                      "paper_nonembedding": m.paper_nonembedding}
    return {
        "key": m.key, "name": m.name, "family": m.family, "year": m.year,
        **rep,
        "published": published,
        "official_exact": {
            "params": m.official,
            "source": m.official_source,
            "matches": None if m.official is None else m.official == n,
        },
        "sources": list(m.sources),
        "notes": list(m.notes),
    }


def reported_report(r: Reported) -> dict:
    """A reported figure, labelled for what it is; no breakdown is invented."""
    out = dataclasses.asdict(r)
    out.pop("aliases")
    out["label"] = KIND_LABELS[r.kind]
    out["computed_from_architecture"] = False
    if r.unit == "parameters" and r.kind == "estimate":
        out["memory_bytes_if_true"] = memory_bytes(r.high)
    return out


def report(name: str, tp: Throughput | None = None) -> dict:
    row = find(name)
    return model_report(row, tp) if isinstance(row, Model) else reported_report(row)


# --------------------------------------------------------------------------------------
# Human-readable numbers (pure; the CLI prints them)


def fmt_count(n: float) -> str:
    """124.4M, 8.03B, 405.9B, 1.76T; plain below a thousand."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= 0.99995 * scale:  # 999.96M prints as 1.00B, not 1000.0M
            x = n / scale
            return f"{x:.2f}{unit}" if x < 10 else f"{x:.1f}{unit}"
    return f"{n:g}"


def fmt_bytes(b: float) -> str:
    """Decimal units (1 GB = 10^9 bytes), as disk and GPU makers count."""
    for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= 0.9995 * scale:  # what would print as 1000 of a unit is 1.00 of the next
            x = b / scale
            # three significant digits, zeros kept so columns line up: 2.00 GB, 10.0 GB
            return f"{x:#.3g}".rstrip(".") + f" {unit}" if x < 1000 else f"{x:.0f} {unit}"
    return f"{b:.0f} B"


def fmt_flop(f: float) -> str:
    return f"{f:.2e}".replace("e+", "e")


_YEAR = 365.25 * 24 * 3600


def fmt_duration(s: float) -> str:
    """45 s, 12 min, 3.4 h, 5.2 days, 3.2 years, 1,950 years, 4.5 million years."""
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 86400:
        return f"{s / 3600:.1f} h"
    if s < _YEAR:
        return f"{s / 86400:.1f} days" if s < 10 * 86400 else f"{s / 86400:.0f} days"
    y = s / _YEAR
    if y < 10:
        return f"{y:.1f} years"
    y3 = round(y, 3 - len(str(int(y))))  # three significant digits: 1,950 / 51,000 years
    if y3 < 1e6:
        return f"{y3:,.0f} years"
    for word, scale in (("billion", 1e9), ("million", 1e6)):
        if y >= scale:
            return f"{y / scale:.1f} {word} years"
    raise AssertionError("unreachable")


def fmt_tokens(d: float | None) -> str:
    """300B, 15.6T, 2.33B: three significant digits, no trailing zeros."""
    if d is None:
        return "not published"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if d >= scale:
            return f"{d / scale:.3g}{unit}"
    return f"{d:.3g}"


def fmt_rate(flops: float) -> str:
    """487 GFLOP/s."""
    for unit, scale in (("PFLOP/s", 1e15), ("TFLOP/s", 1e12), ("GFLOP/s", 1e9),
                        ("MFLOP/s", 1e6)):
        if flops >= scale:
            return f"{flops / scale:.3g} {unit}"
    return f"{flops:.3g} FLOP/s"


def fmt_relative(x: float) -> str:
    """+6.4%, -0.01%: one decimal, two when that would round to zero."""
    return f"{x:+.1%}" if abs(x) >= 0.001 else f"{x:+.2%}"
