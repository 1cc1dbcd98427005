"""The objective of every scaling-law fit and its minimiser (see :mod:`knobsim.scaling.fit`).

Huber loss between the law's log-sum-exp form and the observed log loss, minimised with
L-BFGS-B from every point of a grid of starts, the best few polished with tight
tolerances. Pure numpy + scipy.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np

from knobsim.errors import KnobsimError

# Huber threshold on log loss, Hoffmann et al. (2022) App. D.2. Residuals above it are
# charged linearly, so the fit is close to a median fit in log space.
HUBER_DELTA = 1e-3

# Start grids. "chinchilla" is Hoffmann et al.'s (App. D.2): alpha, beta in {0, 0.5, ..., 2},
# e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25}; 4500 starts for L(N,D), 150 for L(N).
# "coarse" keeps the span with fewer points (243 starts for L(N,D)): on the Chinchilla table
# it lands on the same optimum as the full grid in a twentieth of the time.
GRIDS: Mapping[str, Mapping[str, tuple[float, ...]]] = MappingProxyType(
    {
        "chinchilla": MappingProxyType(
            {
                "coef": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
                "exp": (0.0, 0.5, 1.0, 1.5, 2.0),
                "e": (-1.0, -0.5, 0.0, 0.5, 1.0),
            }
        ),
        "coarse": MappingProxyType(
            {"coef": (0.0, 10.0, 20.0), "exp": (0.0, 1.0, 2.0), "e": (-1.0, 0.0, 1.0)}
        ),
    }
)

# L-BFGS-B settings. Screening runs every start to scipy's usual tolerances; polishing
# reruns the best few on an objective divided by its starting value, so ftol is relative to
# it, with tolerances near machine precision (Besiroglu et al. 2024: don't stop early).
_SCREEN = {"maxiter": 2000}
_POLISH = {"ftol": 1e-14, "gtol": 1e-12, "maxiter": 20000, "maxfun": 40000, "maxcor": 20}
_N_POLISH = 3


# ---------------------------------------------------------------------------------------
# The objective


def _objective(
    theta: np.ndarray, X: np.ndarray, y: np.ndarray, delta: float, e_fixed: float | None
) -> tuple[float, np.ndarray]:
    """Huber(LSE(c_j - p_j X_ij, e) - y_i) summed over rows, divided by delta; and its gradient.

    theta = (c_1..c_k, p_1..p_k[, e]); X (R, k) holds log N / log D; y (R,) log loss.
    Dividing by delta makes a large residual cost |r|/delta, so the objective is O(rows)
    rather than O(1e-3 * rows) and the optimiser's tolerances mean something.
    """
    k = X.shape[1]
    c, p = theta[:k], theta[k : 2 * k]
    e = e_fixed if e_fixed is not None else theta[2 * k]
    T = c - p * X  # (R, k) log of each power-law term
    m = np.maximum(T.max(axis=1), e)  # (R,) for a stable log-sum-exp
    ex = np.exp(T - m[:, None])
    ee = np.exp(e - m)
    s = ex.sum(axis=1) + ee
    r = m + np.log(s) - y  # (R,) residual in log loss
    # With cl = clip(r, -delta, delta), Huber(r) = cl * (r - cl/2) in both regimes, and
    # dHuber/dr = cl; written this way it costs a few array ops (this is the hot loop).
    cl = np.minimum(np.maximum(r, -delta), delta)
    f = float(cl @ (r - 0.5 * cl)) / delta
    g = cl / s  # folds in the softmax normaliser of d LSE / d term
    parts = [g @ ex, -(g @ (ex * X))]
    if e_fixed is None:
        parts.append([g @ ee])
    grad = np.concatenate(parts) / delta
    if not (math.isfinite(f) and math.isfinite(grad.sum())):
        return np.inf, np.zeros_like(theta)
    return f, grad


def _predict_log(theta: np.ndarray, X: np.ndarray, e_fixed: float | None) -> np.ndarray:
    k = X.shape[1]
    e = e_fixed if e_fixed is not None else theta[2 * k]
    T = np.concatenate([theta[:k] - theta[k : 2 * k] * X, np.full((X.shape[0], 1), e)], axis=1)
    m = T.max(axis=1)
    return m + np.log(np.exp(T - m[:, None]).sum(axis=1))


@contextlib.contextmanager
def _one_blas_thread():
    """Run BLAS on one thread, then restore it (threadpoolctl does the bookkeeping).

    Since SciPy 1.15 L-BFGS-B calls LAPACK on its tiny (a few by a few) matrices; with
    OpenBLAS's worker threads spinning beside it, each call can cost 10-30x more on a busy
    machine (measured here: 35 s against 1.4 s for the same fit while a training run held
    the cores; scipy/scipy#22438 reports the same and OPENBLAS_NUM_THREADS=1 as the fix).
    Our problems have 3 to 5 unknowns, so one thread is all they can use anyway.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _minimise(theta0, args, options, scale=1.0):
    from scipy.optimize import minimize  # imported here: `knobsim train` needs no scipy (0.6 s)

    def fg(t):
        f, g = _objective(t, *args)
        return f * scale, g * scale

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        x0 = np.asarray(theta0, dtype=float)
        res = minimize(fg, x0, jac=True, method="L-BFGS-B", options=options)
        f, _ = _objective(res.x, *args)
    return f, res.x


def _multistart(starts: np.ndarray, args) -> tuple[np.ndarray, float]:
    """L-BFGS-B from every start, then polish the best few tightly; the best (theta, objective)."""
    found = []
    for s in starts:
        f, x = _minimise(s, args, _SCREEN)
        if np.isfinite(f):
            found.append((f, x))
    if not found:
        return np.full(starts.shape[1], np.nan), np.inf
    found.sort(key=lambda z: z[0])
    best_f, best_x = found[0]
    for f0, x0 in found[:_N_POLISH]:
        f, x = _minimise(x0, args, _POLISH, scale=1.0 / f0 if f0 > 0 else 1.0)
        if f < best_f:
            best_f, best_x = f, x
    return best_x, best_f


def _grid(k: int, free_e: bool, grid: str | Mapping[str, Sequence[float]]) -> np.ndarray:
    """Start points (S, 2k[+1]) in theta order: coefficients, exponents, then e if free."""
    if isinstance(grid, str):
        if grid not in GRIDS:
            raise KnobsimError(f"unknown grid '{grid}'; choose one of: {', '.join(GRIDS)}")
        grid = GRIDS[grid]
    axes = [grid["coef"]] * k + [grid["exp"]] * k + ([grid["e"]] if free_e else [])
    return np.array(list(itertools.product(*axes)), dtype=float)
