"""Scaling-law fits: L(N), L(D), L(N,D), bootstrap intervals and the compute-optimal frontier.

Every law here is a floor plus power laws,

    L(N)   = E + A / N^alpha
    L(D)   = E + B / D^beta
    L(N,D) = E + A / N^alpha + B / D^beta

and every fit follows Hoffmann et al. (2022, "Training Compute-Optimal Large Language
Models", Appendix D.2): write the law in log space as a log-sum-exp,

    log L = LSE(a - alpha log N, b - beta log D, e),   A = exp(a), B = exp(b), E = exp(e),

minimise the Huber loss (delta = 1e-3) between that and the observed log loss with L-BFGS,
from every point of a grid of starts, and keep the best. The log parametrisation keeps A,
B, E positive and the problem well scaled although A and B span many decades; Huber on
log loss makes the fit relative (a 1% miss costs the same at loss 5 as at loss 2) and
robust to the odd bad run.

Besiroglu et al. (2024, "Chinchilla Scaling: A replication attempt", arXiv:2404.10102)
refit Hoffmann et al.'s data and found the published constants are not the minimum of the
stated objective: the optimiser had stopped early. We therefore run every start to the
usual tolerances and then polish the best few with tight ones, on an objective rescaled so
that L-BFGS-B's relative stopping rule still bites when the loss is tiny (its rule divides
by max(|f|, 1), so an unscaled Huber sum of order 1e-3 would stop it at once).

Intervals are bootstrap percentiles (resample rows with replacement, refit, 2.5th and 97.5th
percentiles). Each resample starts from the full fit's optimum plus a few grid points, which
keeps 200 resamples of L(N,D) at a few seconds.

Pure numpy + scipy, no I/O: tables are read by :mod:`knobsim.scaling.table`, the
objective and its minimiser are :mod:`knobsim.scaling.objective`, the compute-optimal
frontier and whole-table fits :mod:`knobsim.scaling.frontier`. Bad input raises
:class:`~knobsim.errors.KnobsimError` with one line that says what is wrong and how to fix it.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from knobsim.errors import KnobsimError
from knobsim.scaling.objective import (
    HUBER_DELTA,
    _grid,
    _multistart,
    _one_blas_thread,
    _predict_log,
)

# Extra grid points per bootstrap resample, besides the full fit's optimum.
BOOTSTRAP_STARTS = 3

# Column order of ScalingFit.boot.
BOOT_COLUMNS = ("E", "A", "alpha", "B", "beta")

# A table determines a law only if, along each variable, it has more distinct values than
# the constants that shape the curve along it (A and alpha, and E unless it is fixed: with
# as many values as constants the law passes through any table), spread over at least this
# factor, about a decade (a power law's exponent is a slope in log-log; over less, noise and
# curvature cannot be told apart). 9, not 10: a sweep over 1e3:1e4 lands at 9.9x in exact counts.
MIN_SPAN = 9.0

LAWS = ("n", "d", "nd")
FORMULAS = MappingProxyType(
    {
        "n": "L(N) = E + A/N^α",
        "d": "L(D) = E + B/D^β",
        "nd": "L(N,D) = E + A/N^α + B/D^β",
    }
)


# ---------------------------------------------------------------------------------------
# Fits


@dataclass(frozen=True, eq=False)
class ScalingFit:
    """One fitted law. Constants the law lacks are None (A, alpha for L(D); B, beta for L(N))."""

    law: str  # "n", "d" or "nd"
    E: float
    A: float | None
    alpha: float | None
    B: float | None
    beta: float | None
    ci: Mapping[str, tuple[float, float]]  # 95% bootstrap intervals by constant; {} if none
    r2: float  # on loss (not log loss), over the rows fitted
    n_rows: int
    floor_fixed: bool  # E was given, not fitted
    objective: float  # Huber sum / delta at the optimum
    n_starts: int  # grid starts of the full fit
    boot: np.ndarray = field(repr=False)  # (n_boot, 5) in BOOT_COLUMNS order; nan where absent
    # One line when the table cannot determine the law (too few distinct sizes, too narrow
    # a range, an interval wider than its estimate); None when it can.
    warning: str | None = None

    @property
    def formula(self) -> str:
        return FORMULAS[self.law]

    @property
    def a(self) -> float | None:
        """Exponent of N_opt ∝ C^a, beta / (alpha + beta) (L(N,D) only)."""
        return None if self.law != "nd" else _allocation(self.alpha, self.beta, self.A, self.B)[0]

    @property
    def b(self) -> float | None:
        """Exponent of D_opt ∝ C^b, alpha / (alpha + beta) (L(N,D) only)."""
        return None if self.law != "nd" else _allocation(self.alpha, self.beta, self.A, self.B)[1]

    @property
    def G(self) -> float | None:
        """Prefactor of N_opt = G (C/6)^a, (alpha A / (beta B))^(1/(alpha+beta)) (L(N,D) only)."""
        return None if self.law != "nd" else _allocation(self.alpha, self.beta, self.A, self.B)[2]

    def params(self) -> dict[str, float]:
        """The constants this law has, by name (plus a, b, G for L(N,D))."""
        names = {
            "n": ("E", "A", "alpha"),
            "d": ("E", "B", "beta"),
            "nd": ("E", "A", "B", "alpha", "beta", "a", "b", "G"),
        }
        return {k: float(getattr(self, k)) for k in names[self.law]}

    def predict(self, n=None, d=None) -> np.ndarray:
        """Predicted loss at parameter counts n and/or token counts d (whichever the law uses)."""
        out = np.asarray(self.E, dtype=float)
        if self.law in ("n", "nd"):
            if n is None:
                raise KnobsimError(f"{self.formula} needs n to predict")
            out = out + self.A * np.asarray(n, dtype=float) ** -self.alpha
        if self.law in ("d", "nd"):
            if d is None:
                raise KnobsimError(f"{self.formula} needs d to predict")
            out = out + self.B * np.asarray(d, dtype=float) ** -self.beta
        return out


def _allocation(alpha, beta, A, B):
    """(a, b, G) of the compute-optimal frontier; works elementwise on arrays."""
    alpha, beta, A, B = (np.asarray(v, dtype=float) for v in (alpha, beta, A, B))
    with np.errstate(all="ignore"):
        s = alpha + beta
        a = beta / s
        b = alpha / s
        G = (alpha * A / (beta * B)) ** (1.0 / s)
    if a.ndim == 0:
        return float(a), float(b), float(G)
    return a, b, G


def _check_1d(name: str, x, rows: int | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise KnobsimError(f"{name} must be a 1-D array, got shape {x.shape}")
    if rows is not None and x.shape[0] != rows:
        raise KnobsimError(f"{name} has {x.shape[0]} entries but loss has {rows}; give one per run")
    if not np.all(np.isfinite(x)):
        raise KnobsimError(f"{name} holds NaN or inf; remove those runs")
    if np.any(x <= 0):
        raise KnobsimError(f"{name} holds values <= 0; N, D and loss must be positive raw counts")
    return x


def _check_floor(floor: float | None) -> float | None:
    if floor is None:
        return None
    if not math.isfinite(floor) or floor < 0:
        raise KnobsimError(f"--floor must be a finite number >= 0, not {floor}")
    return math.log(floor) if floor > 0 else -math.inf


def _fit(*args) -> ScalingFit:
    """:func:`_fit_inner` with OpenBLAS on one thread (see :func:`_one_blas_thread`)."""
    with _one_blas_thread():
        return _fit_inner(*args)


def _check_fit_inputs(law: str, X: np.ndarray, rows: int, e_fixed, bootstrap: int,
                      delta: float) -> None:
    """One clear error for a fit that cannot be made: too few rows, a constant column, ..."""
    n_params = 2 * X.shape[1] + (e_fixed is None)
    if rows < n_params:
        raise KnobsimError(
            f"{FORMULAS[law]} has {n_params} free constants but only {rows} rows to fit them; "
            f"give at least {n_params} rows"
            + ("" if e_fixed is not None else " (or fix E with --floor)")
        )
    if bootstrap < 0:
        raise KnobsimError(f"--bootstrap must be 0 or more, not {bootstrap}")
    if not delta > 0:
        raise KnobsimError(f"the Huber delta must be positive, not {delta}")
    for j, name in enumerate("ND" if law == "nd" else law.upper()):
        if np.unique(X[:, j]).size < 2:
            raise KnobsimError(
                f"every row has the same {name}; {FORMULAS[law]} needs at least two distinct {name}"
            )


def _natural(t: np.ndarray, *, law: str, k: int, e_fixed) -> np.ndarray:
    """theta -> (E, A, alpha, B, beta), nan where the law lacks the constant."""
    E = math.exp(e_fixed) if e_fixed is not None else np.exp(t[2 * k])
    out = np.full(5, np.nan)
    out[0] = E
    terms = {"n": [(1, 2)], "d": [(3, 4)], "nd": [(1, 2), (3, 4)]}[law]
    # A degenerate bootstrap resample can drive log A past float range: A = inf there, which
    # the percentile intervals (and the too-wide-interval warning) handle; no RuntimeWarning.
    with np.errstate(over="ignore"):
        for j, (ic, ip) in enumerate(terms):
            out[ic], out[ip] = np.exp(t[j]), t[k + j]
    return out


def _bootstrap(law, X, y, delta, e_fixed, theta, starts, natural, bootstrap: int,
               bootstrap_starts: int, seed: int):
    """Resample rows, refit from the optimum plus a few grid points, keep 95% percentiles.

    Returns the (bootstrap, 5) array of refits and {constant: (lo, hi)}."""
    rows = X.shape[0]
    rng = np.random.default_rng(seed)
    extra = starts[rng.choice(len(starts), size=min(bootstrap_starts, len(starts)), replace=False)]
    boot_starts = np.vstack([theta[None, :], extra])
    boot = np.full((bootstrap, 5), np.nan)
    for i in range(bootstrap):
        idx = rng.integers(0, rows, size=rows)
        t, f = _multistart(boot_starts, (X[idx], y[idx], delta, e_fixed))
        if np.isfinite(f):
            boot[i] = natural(t)

    ci: dict[str, tuple[float, float]] = {}
    if bootstrap > 0:
        cols = {name: boot[:, j] for j, name in enumerate(BOOT_COLUMNS)}
        if law == "nd":
            cols["a"], cols["b"], cols["G"] = _allocation(
                cols["alpha"], cols["beta"], cols["A"], cols["B"]
            )
        for name, v in cols.items():
            if np.all(np.isnan(v)):
                continue  # a constant this law lacks
            lo, hi = np.nanpercentile(v, [2.5, 97.5])
            ci[name] = (float(lo), float(hi))
    return boot, ci


_SYMBOL = {"E": "E", "alpha": "α", "beta": "β"}


def _undetermined(law: str, X: np.ndarray, floor_fixed: bool, best: np.ndarray, ci) -> str | None:
    """Why this table cannot determine ``law`` (one line), or None when it can."""
    names = "ND" if law == "nd" else law.upper()
    on_axis = 2 + (not floor_fixed)  # constants shaping the curve along one variable
    reasons = []
    for j, name in enumerate(names):
        k = np.unique(X[:, j]).size
        if k <= on_axis:
            consts = ("E, " if not floor_fixed else "") + ("A, α" if name == "N" else "B, β")
            reasons.append(f"only {k} distinct {name} for the {on_axis} constants along it "
                           f"({consts}), so the law passes through any such table")
        span = float(np.exp(np.ptp(X[:, j])))
        if span < MIN_SPAN:
            reasons.append(f"{name} spans only {span:.3g}x, less than a decade")
    if law == "nd":
        pairs = np.unique(X, axis=0).shape[0]
        for j, (one, other) in enumerate(("ND", "DN")):
            if pairs == np.unique(X[:, j]).size:
                reasons.append(f"each {one} comes with a single {other}, so the {one} and {other} "
                               "terms cannot be told apart")
                break
    for name, j in (("E", 0), ("alpha", 2), ("beta", 4)):
        if name not in ci or np.isnan(best[j]) or (name == "E" and floor_fixed):
            continue
        lo, hi = ci[name]
        if hi - lo > abs(best[j]):
            sym = _SYMBOL[name]
            reasons.append(f"{sym}'s 95% interval [{lo:.3g}, {hi:.3g}] is wider than {sym} = {best[j]:.3g}")
    if not reasons:
        return None
    if any("comes with a single" in r for r in reasons):
        fix = "train several D at each N (or fit one variable: --law n or --law d)"
    else:
        more = " and ".join(names)
        fix = f"add runs at more {more} over a wider range" + ("" if floor_fixed else ", or fix E with --floor")
    return f"{FORMULAS[law].split(' =')[0]} is not determined by this table: {'; '.join(reasons)}; {fix}"


def _fit_inner(
    law: str,
    X: np.ndarray,
    loss: np.ndarray,
    floor: float | None,
    grid,
    bootstrap: int,
    seed: int,
    delta: float,
    bootstrap_starts: int,
) -> ScalingFit:
    k = X.shape[1]
    e_fixed = _check_floor(floor)
    rows = loss.shape[0]
    _check_fit_inputs(law, X, rows, e_fixed, bootstrap, delta)

    y = np.log(loss)
    args = (X, y, delta, e_fixed)
    starts = _grid(k, e_fixed is None, grid)
    theta, obj = _multistart(starts, args)

    natural = functools.partial(_natural, law=law, k=k, e_fixed=e_fixed)
    best = natural(theta)
    boot, ci = _bootstrap(law, X, y, delta, e_fixed, theta, starts, natural, bootstrap,
                          bootstrap_starts, seed)

    pred = np.exp(_predict_log(theta, X, e_fixed))
    ss_tot = float(np.sum((loss - loss.mean()) ** 2))
    r2 = 1.0 - float(np.sum((loss - pred) ** 2)) / ss_tot if ss_tot > 0 else float("nan")

    def opt(j):
        return None if np.isnan(best[j]) else float(best[j])

    return ScalingFit(
        law=law,
        E=float(best[0]),
        A=opt(1),
        alpha=opt(2),
        B=opt(3),
        beta=opt(4),
        ci=MappingProxyType(ci),
        r2=r2,
        n_rows=rows,
        floor_fixed=e_fixed is not None,
        objective=float(obj),
        n_starts=len(starts),
        boot=boot,
        warning=_undetermined(law, X, e_fixed is not None, best, ci),
    )


def fit_power_law(
    x,
    loss,
    *,
    var: str = "n",
    floor: float | None = None,
    grid: str | Mapping[str, Sequence[float]] = "chinchilla",
    bootstrap: int = 200,
    seed: int = 0,
    huber_delta: float = HUBER_DELTA,
    bootstrap_starts: int = BOOTSTRAP_STARTS,
) -> ScalingFit:
    """Fit L(x) = E + K / x^k to raw counts x (parameters if var="n", tokens if var="d").

    For var="n" the constants are named A, alpha; for var="d", B, beta. ``floor`` fixes E.
    """
    if var not in ("n", "d"):
        raise KnobsimError(f"var must be 'n' or 'd', not {var!r}")
    loss = _check_1d("loss", loss)
    x = _check_1d(var.upper(), x, loss.shape[0])
    X = np.log(x)[:, None]
    return _fit(var, X, loss, floor, grid, bootstrap, seed, huber_delta, bootstrap_starts)


def fit_chinchilla(
    n,
    d,
    loss,
    *,
    floor: float | None = None,
    grid: str | Mapping[str, Sequence[float]] = "chinchilla",
    bootstrap: int = 200,
    seed: int = 0,
    huber_delta: float = HUBER_DELTA,
    bootstrap_starts: int = BOOTSTRAP_STARTS,
) -> ScalingFit:
    """Fit L(N,D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, App. D.2); ``floor`` fixes E."""
    loss = _check_1d("loss", loss)
    n = _check_1d("N", n, loss.shape[0])
    d = _check_1d("D", d, loss.shape[0])
    X = np.stack([np.log(n), np.log(d)], axis=1)
    return _fit("nd", X, loss, floor, grid, bootstrap, seed, huber_delta, bootstrap_starts)
