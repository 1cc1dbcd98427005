"""knowledge.png: which words a trained model knows (from RUN/knowledge.json, written by
core/knowledge.py). Plots only read."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knobsim.watch.style import _save, _style, _tidy_log_axis


def plot_knowledge(k: dict, out: Path, title: str | None = None) -> Path:
    """Per-word excess loss over a learner that knows the word, against word rank (log x):
    the model's, and the ideal learner's for a word it does not know; K_eff marked."""
    import matplotlib.pyplot as plt

    bins = [b for b in k["bins"] if b["occurrences"] >= 5]
    lo = np.array([b["rank_lo"] for b in bins], float)
    hi = np.array([b["rank_hi"] for b in bins], float)
    mid = np.sqrt(lo * hi)
    ex = np.array([b["excess_nats"] for b in bins])
    se = np.array([b["excess_se"] or 0.0 for b in bins])
    unk = np.array([b["unknown_nats"] - b["known_nats"] for b in bins])
    with _style():
        fig, ax = plt.subplots(figsize=(6.4, 3.9), layout="constrained")
        ax.fill_between(mid, 0, unk, color="C7", alpha=0.12, lw=0)
        ax.plot(mid, unk, "--", color="C7", lw=1.4,
                label="ideal learner, word unknown (escape + spelling)")
        ax.axhline(0, color="k", lw=0.9, label="ideal learner, word known (the floor's cost)")
        ax.errorbar(mid, ex, yerr=1.96 * se, xerr=[mid - lo, hi - mid], fmt="o", color="C3", ms=4,
                    elinewidth=0.9, capsize=0, label="this model (95% interval; bar = rank bin)")
        keff = k["k_eff"]
        if keff >= 1:
            ax.axvline(keff, color="C0", lw=1.2)
            ax.annotate(rf"$K_{{\rm eff}}$ = {keff:,.0f} words", xy=(keff, 0.3), xycoords=("data", "axes fraction"),
                        xytext=(-6, 0), textcoords="offset points", ha="right", color="C0", fontsize=10,
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.9})
        ax.set_xscale("log")
        _tidy_log_axis(ax.xaxis)
        ax.set_xlim(0.8, hi.max() * 1.3)
        ax.set_xlabel("word rank (1 = most frequent)")
        ax.set_ylabel("excess code length per word (nats)")
        n = k.get("n_params")
        who = f"{n:,}-knob {k.get('arch', 'model')}" if n else "model"
        fig.suptitle(title or f"Which words does the {who} know?", x=0.02, ha="left")
        ax.set_title(f"{k['occurrences']:,} word occurrences; $K_{{\\rm eff}}$: the ideal learner of that "
                     "many words matches the model's loss on them", loc="left", fontsize=9, color="0.35")
        ax.legend(loc="upper left", frameon=True, framealpha=0.9, edgecolor="none", fontsize=9)
        return _save(fig, Path(out) / "knowledge.png")
