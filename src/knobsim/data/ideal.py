"""The ideal learner: the truth curve behind every scaling law on the synthetic language.

An *ideal learner of K words* knows the K most frequent words exactly (their spelling and
their favourite successors) and nothing else. It codes the text word by word, spaces
included, as a two-part code (an escape, as PPM coders do):

* after a known word i, the next word j costs -log P(j | i) if j is known, and
  -log q_i(unknown) + spell(j) otherwise, where q_i(unknown) = sum_{j > K} P(j | i);
* after an unknown word it cannot tell which word it was, so it predicts the average
  next-word distribution over unknown words, q_U(j) = sum_{i > K} pi_i P(j | i) / sum_{i > K} pi_i,
  and codes j as above with q_U in place of P(. | i);
* spell(j) = -sum_c n_jc log f_c: the word's letters and its space coded one by one from the
  letter frequencies f of unknown words (an order-0 letter model fitted to what it does not
  know).

Its loss L*(K) in nats per character is an exact sum over the language's tables, O(V * k)
per K: L*(V) is the entropy floor, L*(0) the unigram (letter-frequency) loss. Learning more
(rarer) words takes more knobs, so a model of N knobs that knows K(N) words has loss
L*(K(N)): the quantization model of neural scaling (Michaud et al. 2023, arXiv:2303.13506).
For an L(N) fit to find the floor, L*(K) - floor must itself be a power law: see
docs/language.md for why a finite, English-like Zipf lexicon is not one.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from knobsim.data.language import Language

FIT_RANGE = (10, 3000)  # the K range of the ideal fit (a model of 1e3..1e7 knobs knows ~these)
LEARNABLE_SEEN = 30  # a word is learnable once seen this many times (the data limit)


@dataclasses.dataclass(frozen=True)
class Coder:
    """The ideal learner of K words as arrays: what `code_lengths` needs (all float64)."""

    k: int
    spell: np.ndarray  # (V,) nats to spell word j (letters and its space) as unknown
    known_escape: np.ndarray  # (V,) -log q_i(unknown) for a known previous word i
    unknown_q: np.ndarray  # (V,) q_U(j): next-word probabilities after an unknown word


def coder(lang: Language, k: int) -> Coder:
    """The ideal learner of the k most frequent words (0 <= k <= V)."""
    n = len(lang.words)
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, {n}], got {k}")
    m = lang.config.successor_weight
    b = (1 - m) * lang.unigram  # the unigram part of every row of P
    succ, sprob, pi = lang.successors, lang.successor_probs, lang.stationary
    counts = lang.letter_counts
    if k < n:
        tail = pi[k:] @ counts[k:]
        f = tail / tail.sum()
        spell = -(counts @ np.log(np.where(f > 0, f, 1.0)))
        # q_i(unknown) = sum_{j>K} (1-m) u_j + m * (weights of i's favourites that are unknown)
        q_unknown = b[k:].sum() + m * np.sum(np.where(succ >= k, sprob, 0.0), axis=1)
        pi_tail = pi[k:].sum()
        flow = np.bincount(succ[k:].ravel(), weights=(pi[k:, None] * sprob[k:]).ravel(),
                           minlength=n)
        unknown_q = b + m * flow / pi_tail
    else:
        spell = np.zeros(n)
        q_unknown = np.zeros(n)
        unknown_q = np.zeros(n)
    with np.errstate(divide="ignore"):
        escape = -np.log(q_unknown)
    return Coder(k=k, spell=spell, known_escape=escape, unknown_q=unknown_q)


def code_lengths(lang: Language, c: Coder, prev: np.ndarray, nxt: np.ndarray,
                 next_unknown: bool = False) -> np.ndarray:
    """Nats the ideal learner spends on word `nxt` (and its space) after word `prev`.

    Straight from the definition, one word pair at a time (vectorised): the reference that
    `ideal_loss`'s closed-form sums are tested against, and what per-word figures use.
    ``next_unknown`` prices every next word as if it were unknown (escape + spelling); at
    K = V that is the learner of V - 1 words' price."""
    prev, nxt = np.asarray(prev), np.asarray(nxt)
    n = len(lang.words)
    if c.k == n:
        if not next_unknown:
            return -lang.transition_logprob(prev, nxt)
        c = coder(lang, n - 1)
    k = c.k
    known_prev = prev < k
    known_next = np.zeros(nxt.shape, bool) if next_unknown else nxt < k
    q = c.unknown_q
    with np.errstate(divide="ignore"):
        after_known = np.where(known_next, -lang.transition_logprob(prev, nxt),
                               c.known_escape[prev] + c.spell[nxt])
        after_unknown = np.where(known_next, -np.log(q[nxt]), -np.log(q[k:].sum()) + c.spell[nxt])
    return np.where(known_prev, after_known, after_unknown)


def _xlogx(p: np.ndarray) -> np.ndarray:
    return np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)


class _Sums:
    """The K-independent pieces of L*(K), computed once per language."""

    def __init__(self, lang: Language):
        m = lang.config.successor_weight
        self.lang, self.m = lang, m
        self.b = (1 - m) * lang.unigram  # the unigram part of every row of P
        b_fav = self.b[lang.successors]
        p_fav = b_fav + m * lang.successor_probs  # P(favourite | i), (V, k)
        # sum_{j<=K} -P(j|i) log P(j|i) = -sum_{j<=K} b_j log b_j, corrected on i's known
        # favourites by (b log b - p log p).
        self.fav_correction = _xlogx(b_fav) - _xlogx(p_fav)
        self.cum_xlogx_b = np.r_[0.0, np.cumsum(_xlogx(self.b))]

    def word_loss(self, k: int) -> float:
        lang, m, b = self.lang, self.m, self.b
        n = len(lang.words)
        succ, sprob, pi = lang.successors[:k], lang.successor_probs[:k], lang.stationary
        c = coder(lang, k)
        fav_known = succ < k
        # After a known word i (rows < k): its known words' -P log P, then for unknown j:
        # P(j|i) (escape_i + spell_j).
        known_part = -self.cum_xlogx_b[k] + np.sum(np.where(fav_known, self.fav_correction[:k], 0.0), axis=1)
        after_unknown = 0.0
        if k < n:
            q_unknown = np.exp(-c.known_escape[:k])
            spell_mass = b[k:] @ c.spell[k:] + m * np.sum(np.where(fav_known, 0.0, sprob * c.spell[succ]), axis=1)
            known_part = known_part - _xlogx(q_unknown) + spell_mass
            # After an unknown word: pi_tail * E_{j ~ q_U}[code length of j].
            q = c.unknown_q
            q_unk = q[k:].sum()
            per_word = -np.sum(_xlogx(q[:k])) - float(_xlogx(np.array(q_unk))) + q[k:] @ c.spell[k:]
            after_unknown = float(pi[k:].sum() * per_word)
        return float(pi[:k] @ known_part) + after_unknown


def ideal_word_loss(lang: Language, k: int) -> float:
    """E[code length per word] of the ideal learner of k words, nats (exact sums)."""
    return _Sums(lang).word_loss(k)


def ideal_loss(lang: Language, k: int) -> float:
    """L*(k): the ideal learner's loss in nats per character (exact)."""
    return ideal_word_loss(lang, k) / lang.mean_chars_per_word


def k_grid(n_words: int, per_decade: int = 8, k_min: int = 1) -> np.ndarray:
    """Log-spaced K from k_min to V (integers, unique, V included)."""
    ks = np.round(np.logspace(np.log10(k_min), np.log10(n_words), 1 + int(per_decade * np.log10(n_words / k_min))))
    return np.unique(np.r_[ks.astype(int), n_words])


def ideal_curve(lang: Language, ks) -> np.ndarray:
    """L*(K) for each K in ks, nats per character."""
    sums = _Sums(lang)
    return np.array([sums.word_loss(int(k)) for k in ks]) / lang.mean_chars_per_word


@dataclasses.dataclass(frozen=True)
class IdealFit:
    """The E-free fit L*(K) = E + A K^-alpha over [k_min, k_max], least squares in log L."""

    E: float
    A: float
    alpha: float
    k_min: int
    k_max: int
    floor: float  # the exact floor, for comparison
    slope_mean: float  # mean local log-log slope of L*(K) - floor over the range
    slope_spread: float  # max |local slope / mean - 1| (quarter-decade steps)

    @property
    def rel_error(self) -> float:
        """(E - floor) / floor."""
        return self.E / self.floor - 1.0

    def to_dict(self) -> dict:
        return {"E": self.E, "A": self.A, "alpha": self.alpha, "k_min": self.k_min,
                "k_max": self.k_max, "floor": self.floor, "E_rel_error": self.rel_error,
                "slope_mean": self.slope_mean, "slope_spread": self.slope_spread}


def fit_ideal(lang: Language, k_range: tuple[int, int] = FIT_RANGE, per_decade: int = 8) -> IdealFit:
    """Fit E + A K^-alpha to L*(K) on a log grid over k_range, with E free in [0, min L]."""
    from scipy.optimize import least_squares

    n = len(lang.words)
    lo, hi = k_range[0], min(k_range[1], n - 1)
    ks = k_grid(hi, per_decade, lo)
    y = ideal_curve(lang, ks)
    logk = np.log(ks)

    def resid(p):
        e, log_a, alpha = p
        return np.log(e + np.exp(log_a - alpha * logk)) - np.log(y)

    best = None
    for alpha0 in (0.3, 0.7, 1.2, 2.0):
        for e0 in (0.0, 0.5 * y.min(), 0.9 * y.min()):
            a0 = np.log(max(y[0] - e0, 1e-9)) + alpha0 * logk[0]
            r = least_squares(resid, [e0, a0, alpha0], bounds=([0.0, -60.0, 1e-3], [y.min(), 60.0, 6.0]),
                              x_scale=[0.1, 1.0, 0.1])
            if best is None or r.cost < best.cost:
                best = r
    e, log_a, alpha = best.x
    # Local slopes of the excess over the floor, in quarter-decade steps.
    floor = lang.entropy_rate
    kq = np.unique(np.r_[np.round(10 ** np.arange(np.log10(lo), np.log10(hi), 0.25)).astype(int), hi])
    ex = ideal_curve(lang, kq) - floor
    slopes = -np.diff(np.log(ex)) / np.diff(np.log(kq))
    return IdealFit(E=float(e), A=float(np.exp(log_a)), alpha=float(alpha), k_min=int(lo),
                    k_max=int(hi), floor=floor, slope_mean=float(slopes.mean()),
                    slope_spread=float(np.max(np.abs(slopes / slopes.mean() - 1.0))))


def learnable_rank(lang: Language, chars: float, seen: int = LEARNABLE_SEEN) -> int:
    """How many words are seen at least `seen` times in `chars` characters of text: a word
    of rank r appears chars * pi_r / chars_per_word times."""
    return int(np.sum(chars * lang.stationary / lang.mean_chars_per_word >= seen))


def k_effective(lang: Language, loss: float, ks: np.ndarray | None = None) -> float:
    """The K at which the ideal learner's loss equals `loss`: the number of words a model
    with that loss knows, in the ideal learner's currency. 0 when the loss is above L*(0);
    V when it is at or below the floor."""
    n = len(lang.words)
    ks = np.r_[0, k_grid(n, 16)] if ks is None else np.asarray(ks)
    return crossing(ks, ideal_curve(lang, ks), loss, n)


def crossing(ks: np.ndarray, y: np.ndarray, target: float, n: int) -> float:
    """Where the falling curve y(K) (ks[0] = 0, ks[-1] = V = n) crosses target: log-linear
    in K between grid points (linear from K = 0). 0 above y[0], n at or below y[-1]."""
    if target >= y[0]:
        return 0.0
    if target <= y[-1]:
        return float(n)
    i = int(np.argmax(y <= target))  # the first grid point at or below the target
    k0, k1, y0, y1 = ks[i - 1], ks[i], y[i - 1], y[i]
    t = (y0 - target) / (y0 - y1)
    if k0 == 0:
        return float(k1 * t)
    return float(np.exp(np.log(k0) + t * (np.log(k1) - np.log(k0))))


K_EFF_MIN = 10  # words: below it L*(K) is no power law yet (a letter model beats it)


def k_effectives(lang: Language, losses, ks: np.ndarray | None = None,
                 curve: np.ndarray | None = None) -> np.ndarray:
    """k_effective of many losses on one K grid (default: 16 points a decade, K = 0 first;
    give ``ks`` and its ``curve`` to reuse them). The curve is computed only when some loss is
    below L*(0) (else every K_eff is 0)."""
    losses = np.asarray(losses, float)
    n = len(lang.words)
    if curve is None and np.all(losses >= ideal_loss(lang, 0)):
        return np.zeros(losses.shape)
    if ks is None:
        ks = np.r_[0, k_grid(n, 16)]
    if curve is None:
        curve = ideal_curve(lang, ks)
    return np.array([crossing(ks, curve, float(x), n) for x in losses])


def knowledge_fit(n_params, k_eff, boot: int, seed: int = 0, k_min: int = K_EFF_MIN) -> dict | None:
    """Words known against knobs, K_eff = c N^gamma: least squares in log-log over the runs
    with K_eff >= k_min, a 95% interval for gamma from resampling those runs (``boot``
    times). None with fewer than 2 sizes."""
    n = np.asarray(n_params, float)
    k = np.asarray(k_eff, float)
    sel = k >= k_min
    if len(np.unique(n[sel])) < 2:
        return None
    x, y = np.log(n[sel]), np.log(k[sel])
    gamma, log_c = np.polyfit(x, y, 1)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(boot):
        i = rng.integers(0, x.size, x.size)
        if np.unique(x[i]).size >= 2:
            draws.append(np.polyfit(x[i], y[i], 1)[0])
    ci = [float(q) for q in np.percentile(draws, [2.5, 97.5])] if draws else None
    return {"c": float(np.exp(log_c)), "gamma": float(gamma), "gamma_ci": ci,
            "k_eff_min": k_min, "n_used": sorted({int(v) for v in n[sel]})}


LEARNABLE_AT = (1e6, 1e7, 1e8)  # characters of training text at which learnable ranks are told


def learnable_ranks(lang: Language) -> dict[str, int]:
    """{"1e6": rank, "1e7": rank, "1e8": rank}: learnable_rank at each of LEARNABLE_AT."""
    return {f"{d:.0e}".replace("+0", ""): learnable_rank(lang, d) for d in LEARNABLE_AT}


def report(lang: Language, per_decade: int = 4) -> dict:
    """What `knobsim data --ideal` prints: L*(K) on a log grid (K = 0 and V included), its
    E-free fit over FIT_RANGE against the exact floor, and the learnable ranks."""
    n = len(lang.words)
    ks = np.r_[0, k_grid(n, per_decade)]
    losses = ideal_curve(lang, ks)
    fit = fit_ideal(lang) if n - 1 >= 10 * FIT_RANGE[0] else None  # a decade of K at least
    return {
        "entropy_floor": lang.entropy_rate,
        "ideal": [{"K": int(k), "loss": float(v)} for k, v in zip(ks, losses)],
        "ideal_fit": fit.to_dict() if fit else None,
        "learnable_rank": learnable_ranks(lang),
        "learnable_seen": LEARNABLE_SEEN,
    }
