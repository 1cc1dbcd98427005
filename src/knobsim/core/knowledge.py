"""Which words does a trained model know? Per-word loss against word rank, and K_eff.

    measure_knowledge(run) -> dict      written to RUN/knowledge.json by `knobsim watch`

The model reads a fixed sample of the language (its own stream, apart from training and
eval text) in windows of its context length. Every word that lies whole inside a window
and has a previous word there is one *occurrence*; the model's code length for it is the sum
of its per-character losses over the word's letters and its space. On exactly the same
occurrences the ideal learner of K words (data/ideal.py) pays, per word,

    known cost    -log P(word | previous word)           (it knows the word)
    unknown cost  escape + spelling from letter frequencies (it does not)

K_eff is the K at which the ideal learner's nats per character on these occurrences equal
the model's: the model is as good as a learner that knows its K_eff most frequent words.
Per rank bin, the model's excess over the known cost says which words it knows (excess
near 0) and which it spells like an unknown word (excess near unknown - known).
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from knobsim.config import RunConfig
from knobsim.core.state import DTYPES, canonical_dtype, cast_floats, unflat_params
from knobsim.data import ideal
from knobsim.data.language import Language, build_language
from knobsim.data.sampler import device_tables, sample_words, spell_with_index, words_needed
from knobsim.io.rundir import load_params, read_json
from knobsim.models import sizing

KNOWLEDGE_CHARS = 1 << 20  # characters of sample text (~200k word occurrences)
_BATCH = 64  # windows per forward pass
_BINS_PER_DECADE = 4


@functools.lru_cache(maxsize=8)
def _scorer(arch: str, shape, dtype: str, batch: int, seq: int, n_words: int):
    """jit: (params, tables, key) -> (per-char loss (B, T), word index of each target char
    (B, T), word ids (B, W)). One program per model shape (frozen: hashable) and window."""
    fam = sizing.family(arch)
    apply = functools.partial(fam.apply, shape=shape)
    compute = DTYPES[canonical_dtype(dtype)]

    def score(params, tables, key):
        words = sample_words(tables, key, batch, n_words)
        tokens, widx = spell_with_index(tables, words, seq + 1)
        p = params if jnp.dtype(compute) == jnp.float32 else cast_floats(params, compute)
        logits = apply(p, tokens[:, :-1]).astype(jnp.float32)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:])
        return loss, widx[:, 1:], words

    return jax.jit(score)


def occurrences(cfg: RunConfig, params: dict, lang: Language, chars: int = KNOWLEDGE_CHARS):
    """(prev ids, word ids, model nats per occurrence) of the whole words with a previous word
    in `chars` characters of the language's knowledge stream."""
    seq = cfg.train.seq
    n_words = words_needed(lang, seq)
    score = _scorer(cfg.model.arch, cfg.model.shape, cfg.dtype, _BATCH, seq, n_words)
    tables = device_tables(lang)
    root = jax.random.fold_in(jax.random.key(cfg.language.seed), 0x4B4E0)  # not train, not eval
    n_batches = max(1, chars // (_BATCH * seq))
    prev_all, next_all, nats_all = [], [], []
    for i in range(n_batches):
        loss, widx, words = (np.asarray(x) for x in score(params, tables, jax.random.fold_in(root, i)))
        b, w = words.shape
        occ = (np.arange(b)[:, None] * w + widx).ravel()
        nats = np.bincount(occ, weights=loss.ravel().astype(np.float64), minlength=b * w).reshape(b, w)
        ends = np.cumsum(lang.lengths[words] + 1, axis=1)  # exclusive end of each word
        whole = (ends <= seq + 1) & (np.arange(w)[None, :] >= 1)  # inside the window, has a prev
        rows, cols = np.nonzero(whole)
        prev_all.append(words[rows, cols - 1])
        next_all.append(words[rows, cols])
        nats_all.append(nats[rows, cols])
    return np.concatenate(prev_all), np.concatenate(next_all), np.concatenate(nats_all)


def knowledge(lang: Language, prev: np.ndarray, nxt: np.ndarray, model_nats: np.ndarray) -> dict:
    """K_eff and the per-rank-bin table from occurrences (see the module docstring)."""
    n = len(lang.words)
    chars = float(np.sum(lang.lengths[nxt] + 1))
    model_per_char = float(model_nats.sum() / chars)
    ks = np.r_[0, ideal.k_grid(n, 16)]
    sums = np.array([ideal.code_lengths(lang, ideal.coder(lang, int(k)), prev, nxt).sum() for k in ks])
    ideal_per_char = sums / chars  # falls with K (on these occurrences)
    k_eff = ideal.crossing(ks, ideal_per_char, model_per_char, n)
    c = ideal.coder(lang, int(round(k_eff)))
    known = -lang.transition_logprob(prev, nxt)
    unknown = ideal.code_lengths(lang, c, prev, nxt, next_unknown=True)
    edges = np.unique(np.round(10 ** np.arange(0, np.log10(n) + 1e-9, 1 / _BINS_PER_DECADE)).astype(int))
    edges = np.r_[edges[edges < n], n + 1]
    bins = []
    for lo, hi in zip(edges[:-1], edges[1:]):  # ranks lo..hi-1 (1-based)
        sel = (nxt >= lo - 1) & (nxt < hi - 1)
        cnt = int(sel.sum())
        if cnt == 0:
            continue
        ex = model_nats[sel] - known[sel]
        bins.append({
            "rank_lo": int(lo), "rank_hi": int(hi - 1), "occurrences": cnt,
            "words_seen": int(np.unique(nxt[sel]).size),
            "model_nats": float(model_nats[sel].mean()), "known_nats": float(known[sel].mean()),
            "unknown_nats": float(unknown[sel].mean()),
            "excess_nats": float(ex.mean()),
            "excess_se": float(ex.std(ddof=1) / np.sqrt(cnt)) if cnt > 1 else None,
            "chars_per_word": float(np.mean(lang.lengths[nxt[sel]] + 1)),
        })
    return {
        "k_eff": k_eff,
        "model_nats_per_char": model_per_char,
        "floor_nats_per_char_on_sample": float(known.sum() / chars),
        "entropy_floor": lang.entropy_rate,
        "occurrences": int(len(nxt)),
        "chars": int(chars),
        "ideal_on_sample": [{"K": int(k), "loss": float(v)} for k, v in zip(ks, ideal_per_char)],
        "bins": bins,
    }


def measure_knowledge(run: Path, chars: int = KNOWLEDGE_CHARS) -> dict:
    """knowledge.json's content for a finished run (its params.npz and config.json)."""
    run = Path(run)
    cfg = RunConfig.from_dict(read_json(run / "config.json"))
    lang = build_language(cfg.language)
    params = unflat_params(cfg, load_params(run))
    prev, nxt, nats = occurrences(cfg, params, lang, chars)
    out = knowledge(lang, prev, nxt, nats)
    summary = run / "summary.json"
    eval_loss = read_json(summary).get("final_eval_loss") if summary.exists() else None
    return {
        "n_params": cfg.model.n_params_total,
        "arch": cfg.model.arch,
        "seq": cfg.train.seq,
        "sample_chars": chars,
        **out,
        "eval_loss": eval_loss,
        "k_eff_from_eval_loss": (ideal.k_effective(lang, eval_loss) if eval_loss is not None else None),
    }
