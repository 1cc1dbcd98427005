"""What a zoo row costs: parameter counts broken down, memory, training compute and time
on this machine, and user-given architectures (`knobsim count`).

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
from pathlib import Path

from knobsim.errors import KnobsimError
from knobsim.models.counting import DecoderSpec, count_decoder
from knobsim.zoo.catalog import KIND_LABELS, Model, Reported, find

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
# Table 4). It stands in only until `knobsim train` has measured an MFU here (`throughput`).
ASSUMED_MFU = 0.4


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

    peak_flops: float  # measured fp32 matmul peak (knobsim.core.hardware)
    mfu: float  # fraction of that peak a training step sustains
    mfu_source: str  # "assumed ..." or where a measured MFU came from

    @property
    def flops(self) -> float:
        return self.peak_flops * self.mfu


def throughput(mfu: float | None = None) -> Throughput:
    """This machine's measured peak times an MFU, and where that MFU comes from.

    In order: ``mfu`` if given (``knobsim zoo --mfu``); else the MFU `knobsim train
    --record-mfu` measured for the largest transformer it has trained on this machine, kept
    in ``$KNOBSIM_CACHE/mfu.json`` (knobsim.core.hardware.record_mfu); else ASSUMED_MFU.
    """
    from knobsim.core import hardware  # measures once per machine (about a second), then cached

    if mfu is not None:
        return Throughput(hardware.peak_flops(), mfu, "given with --mfu")
    seen = hardware.measured_mfu()
    if seen is not None:
        path = str(hardware.cache_dir() / "mfu.json")
        home = str(Path.home())
        if path.startswith(home + "/"):
            path = "~" + path[len(home):]
        return Throughput(hardware.peak_flops(), seen["mfu"],
                          f"measured by `knobsim train --record-mfu` on a {seen['n_params']:,}-knob "
                          f"transformer here, read from {path}; --mfu overrides it")
    return Throughput(hardware.peak_flops(), ASSUMED_MFU,
                      "assumed, not measured: `knobsim train --record-mfu` a transformer "
                      "here to measure it, or give --mfu")


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
