"""The zoo: published language models, their exact parameter counts, memory and compute.

``from knobsim import zoo`` gives the whole API; its homes are :mod:`knobsim.zoo.catalog`
(the rows and ``find``), :mod:`knobsim.zoo.report` (counts, memory, compute, time on this
machine, ``make_spec``) and :mod:`knobsim.zoo.fmt` (how numbers are printed).
"""

from knobsim.zoo.catalog import KIND_LABELS, MODELS, REPORTED, Model, Reported, find, names
from knobsim.zoo.fmt import (
    fmt_bytes, fmt_count, fmt_duration, fmt_flop, fmt_mfu, fmt_rate, fmt_relative, fmt_tokens,
)
from knobsim.zoo.report import (
    ASSUMED_MFU, BYTES_ADAMW_FP32, BYTES_BF16, BYTES_FP32, CHINCHILLA_TOKENS_PER_PARAM,
    Throughput, chinchilla_tokens, count_report, make_spec, memory_bytes, model_report, report,
    reported_report, seconds_to_train, spec_dict, spec_summary, throughput, train_flop,
)

__all__ = [
    "KIND_LABELS", "MODELS", "REPORTED", "Model", "Reported", "find", "names",
    "fmt_bytes", "fmt_count", "fmt_duration", "fmt_flop", "fmt_mfu", "fmt_rate", "fmt_relative",
    "fmt_tokens",
    "ASSUMED_MFU", "BYTES_ADAMW_FP32", "BYTES_BF16", "BYTES_FP32",
    "CHINCHILLA_TOKENS_PER_PARAM", "Throughput", "chinchilla_tokens", "count_report",
    "make_spec", "memory_bytes", "model_report", "report", "reported_report",
    "seconds_to_train", "spec_dict", "spec_summary", "throughput", "train_flop",
]
