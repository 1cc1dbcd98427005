"""What the L(N, D) fit can recover on the isoflop grid when the learner is ideal: no training.

    python experiments/results/isoflop/ideal_grid.py      # 24 fits: ~25 min on 2 cores shared with a sweep

For each grid of compute budgets (isoflop.py's sizes: 7 from N_c / 16 to 4 N_c, at least 30
steps of 16 x 64), every run (N, D) is given the loss of the ideal learner that knows K words
(knobsim.data.ideal.ideal_loss), where a model of N knobs can hold K_N = c N^gamma words (c,
gamma: the capacity-limited sizes of the committed L(N) run, K_eff(1e5) = 452 and gamma 0.60,
../scaling_params) and D characters teach K_D words (those seen >= 30 times,
ideal.learnable_rank). Two ways to combine the limits: "min" (a model knows min(K_N, K_D)
words) and "harmonic" (1/K = 1/K_N + 1/K_D, a soft corner). The losses get 0.3% noise (three
noise seeds) and the same fit as isoflop.py (knobsim.scaling.fit_chinchilla) gives E, printed
with its distance from the exact floor.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

EXP = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(EXP))

import _common as C  # noqa: E402
import isoflop  # noqa: E402
from knobsim import scaling  # noqa: E402
from knobsim.data import ideal  # noqa: E402
from knobsim.data.language import build_language  # noqa: E402
from knobsim.models import sizing  # noqa: E402

GRIDS = ([1e11, 3e11, 1e12, 3e12], [1e11, 3e11, 1e12, 3e12, 1e13],
         [1e11, 3e11, 1e12, 3e12, 1e13, 3e13], [1e12, 3e12, 1e13, 3e13, 1e14])
C_WORDS, GAMMA = 0.452, 0.60  # K_N = c N^gamma: 452 words at 1e5 knobs


def grid(budgets, seq=64):
    """(N, D) of isoflop.py's full-mode runs at these budgets, one per size (seeds share it)."""
    pts = [p for p in isoflop.points("full", budgets) if p.seed == 0]
    n = [sizing.count_params("transformer", sizing.shape_for_budget("transformer", p.budget, isoflop.VOCAB, seq)).total
         for p in pts]
    return np.array(n, float), np.array([p.tokens for p in pts], float)


def main():
    lang = build_language(C.settings("full").language)
    floor = lang.entropy_rate
    cache = {}

    def loss_of(k):
        k = int(round(k))
        if k not in cache:
            cache[k] = ideal.ideal_loss(lang, k)
        return cache[k]

    print(f"floor {floor:.4f} nats/char; K_N = {C_WORDS} N^{GAMMA}")
    for budgets in GRIDS:
        n, d = grid(budgets)
        k_d = np.array([ideal.learnable_rank(lang, x) for x in d], float)
        k_n = C_WORDS * n ** GAMMA
        for how in ("min", "harmonic"):
            k = np.minimum(k_n, k_d) if how == "min" else 1 / (1 / k_n + 1 / np.maximum(k_d, 1e-9))
            loss = np.array([loss_of(x) for x in k])
            es = [scaling.fit_chinchilla(n, d, loss * (1 + 0.003 * np.random.default_rng(s).standard_normal(loss.size)),
                                         bootstrap=0, grid="chinchilla").E for s in range(3)]
            print(f"C {budgets[0]:.0e}..{budgets[-1]:.0e} ({len(budgets)} budgets, {n.size} runs) {how:8s} "
                  f"E {np.round(es, 4)} = floor {np.mean(es) / floor - 1:+.1%}; best run {loss.min():.4f}", flush=True)


if __name__ == "__main__":
    main()
