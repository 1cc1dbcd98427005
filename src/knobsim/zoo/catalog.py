"""The zoo's rows: published language models with their architectures, and the reported
figures that have none. Lookup by name (`find`). Every count is computed from the
architecture through :func:`knobsim.models.counting.count_decoder` (knobsim.zoo.report);
nothing is typed in. Where a released checkpoint exists, its exact parameter count (the
sum of its tensor sizes) is kept beside the row so the tests can check the computation
against it to the parameter.

Rows without a published architecture (GPT-4, "frontier" models) are reported estimates,
with no breakdown; the brain's neurons and synapses are a reference, not a parameter count.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Literal

from knobsim.errors import KnobsimError
from knobsim.models.counting import DecoderSpec

# --------------------------------------------------------------------------------------
# The rows

# The explainer knobsim grew from, quoted by some rows: slide notes (not in this repository;
# no sources) with the tables "Explosion of Parameters in LLMs" and "Open Source Models".
EXPLAINER = '"Understanding Parameters and Weights in LLMs" (the slide notes knobsim grew from)'


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
        source=f"The estimate of {EXPLAINER}, table 'Explosion of Parameters in LLMs' (no "
        "source given); no lab has published an architecture or count.",
        aliases=("frontier-models",),
    ),
    Reported(
        key="linear", name="Linear model", kind="knobsim", figure="20-200",
        low=20, high=200, unit="parameters",
        source=f"{EXPLAINER}: 'a simple linear regression model ... 20 to 200 parameters'.",
        note="knobsim's own `linear` family trains at this size.",
        command="knobsim train --arch linear --params 200",
        aliases=("linear-model",),
    ),
    Reported(
        key="early-dnn", name="Early deep network", kind="knobsim", figure="~200,000",
        low=2e5, high=2e5, unit="parameters",
        source=f"{EXPLAINER}: 'early deep neural networks had about 200,000 parameters'.",
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
    hint = ""
    if close:
        quoted = [f"'{c}'" for c in close]
        alts = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
        hint = f"did you mean {alts}? "
    raise KnobsimError(f"unknown model '{name}': {hint}`knobsim zoo` lists them all")
