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

Pure numpy + scipy; no I/O apart from :func:`read_table`. Bad input raises
:class:`~knobsim.errors.KnobsimError` with one line that says what is wrong and how to fix it.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np
from scipy.optimize import minimize

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

# Extra grid points per bootstrap resample, besides the full fit's optimum.
BOOTSTRAP_STARTS = 3

# L-BFGS-B settings. Screening runs every start to scipy's usual tolerances; polishing
# reruns the best few on an objective divided by its starting value, so ftol is relative to
# it, with tolerances near machine precision (Besiroglu et al. 2024: don't stop early).
_SCREEN = {"maxiter": 2000}
_POLISH = {"ftol": 1e-14, "gtol": 1e-12, "maxiter": 20000, "maxfun": 40000, "maxcor": 20}
_N_POLISH = 3

# Column order of ScalingFit.boot.
BOOT_COLUMNS = ("E", "A", "alpha", "B", "beta")

LAWS = ("n", "d", "nd")
FORMULAS = MappingProxyType(
    {
        "n": "L(N) = E + A/N^α",
        "d": "L(D) = E + B/D^β",
        "nd": "L(N,D) = E + A/N^α + B/D^β",
    }
)


# ---------------------------------------------------------------------------------------
# Tables


@dataclass(frozen=True)
class Table:
    """A loss table read from a file: one entry per run, raw counts (not logs)."""

    loss: np.ndarray  # (R,) final loss
    n: np.ndarray | None  # (R,) parameters, or None when the table has no N column
    d: np.ndarray | None  # (R,) training tokens, or None when neither D nor N and C is there
    source: str = ""  # where the rows came from, for messages
    d_from: str = ""  # how D was obtained: "column 'D'" or "C/(6N), column 'C'"
    dropped: int = 0  # rows left out by drop_highest

    @property
    def rows(self) -> int:
        return int(self.loss.shape[0])


def read_table(
    path: str | Path,
    n_col: str = "N",
    d_col: str = "D",
    c_col: str = "C",
    loss_col: str = "loss",
) -> Table:
    """Read a CSV with a header row. N, D (or C) and loss are raw counts; other columns are ignored.

    When D is missing but C is present, D = C / (6N) (training compute C ~ 6ND,
    Kaplan et al. 2020, Sec. 2.1).
    """
    path = Path(path)
    if not path.exists():
        raise KnobsimError(f"no such file: {path}; pass an existing CSV with --csv")
    if not path.is_file():
        raise KnobsimError(f"{path} is not a file; pass a CSV file with --csv")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError:
        raise KnobsimError(f"{path} is not UTF-8 text; save the table as a UTF-8 CSV") from None
    except OSError as e:
        raise KnobsimError(
            f"cannot read {path}: {e.strerror}; check the path and its permissions"
        ) from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise KnobsimError(
            f"{path} is empty; it needs a header row (e.g. N,D,loss) and one row per run"
        )
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    have = ", ".join(header)

    def col(name: str) -> int | None:
        return header.index(name) if name in header else None

    i_loss, i_n, i_d, i_c = col(loss_col), col(n_col), col(d_col), col(c_col)
    if i_loss is None:
        raise KnobsimError(
            f"{path} has no column '{loss_col}' (it has: {have}); "
            "name the loss column with --loss-col"
        )
    if i_n is None and i_d is None:
        raise KnobsimError(
            f"{path} has neither an N column '{n_col}' nor a D column '{d_col}' (it has: {have}); "
            "name them with --n-col / --d-col (or give N and C with --c-col)"
        )
    if not body:
        raise KnobsimError(f"{path} has a header but no rows; add one row per run")

    def values(i: int, name: str) -> np.ndarray:
        out = np.empty(len(body))
        for r, row in enumerate(body):
            line = r + 2  # 1-based, after the header
            cell = row[i].strip() if i < len(row) else ""
            if not cell:
                raise KnobsimError(
                    f"{path} line {line}: column '{name}' is empty; fill it or delete the row"
                )
            try:
                v = float(cell)
            except ValueError:
                raise KnobsimError(
                    f"{path} line {line}: column '{name}' holds '{cell}', not a number; "
                    "every N, D, C and loss cell must be a positive number"
                ) from None
            if not math.isfinite(v) or v <= 0:
                raise KnobsimError(
                    f"{path} line {line}: column '{name}' is {cell}; "
                    "N, D, C and loss must be positive and finite (raw counts, not logs)"
                )
            out[r] = v
        return out

    loss = values(i_loss, loss_col)
    n = values(i_n, n_col) if i_n is not None else None
    d, d_from = None, ""
    if i_d is not None:
        d, d_from = values(i_d, d_col), f"column '{d_col}'"
    elif i_c is not None and n is not None:
        d, d_from = values(i_c, c_col) / (6.0 * n), f"C/(6N), column '{c_col}'"
    return Table(loss=loss, n=n, d=d, source=str(path), d_from=d_from)


def drop_highest(table: Table, k: int) -> Table:
    """Leave out the k highest-loss rows (Besiroglu et al. 2024 drop 5 from Chinchilla's table)."""
    if k < 0:
        raise KnobsimError(f"--drop-highest must be 0 or more, not {k}")
    if k == 0:
        return table
    if k >= table.rows:
        raise KnobsimError(
            f"--drop-highest {k} would leave no rows of {table.rows}; drop fewer than {table.rows}"
        )
    # Stable sort so ties drop the later rows, deterministically; keep the file's order.
    keep = np.sort(np.argsort(table.loss, kind="stable")[: table.rows - k])

    def take(x):
        return None if x is None else x[keep]

    return replace(
        table, loss=table.loss[keep], n=take(table.n), d=take(table.d), dropped=table.dropped + k
    )


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
    n_params = 2 * k + (e_fixed is None)
    rows = loss.shape[0]
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

    y = np.log(loss)
    args = (X, y, delta, e_fixed)
    starts = _grid(k, e_fixed is None, grid)
    theta, obj = _multistart(starts, args)

    def natural(t: np.ndarray) -> np.ndarray:
        """theta -> (E, A, alpha, B, beta), nan where the law lacks the constant."""
        E = math.exp(e_fixed) if e_fixed is not None else np.exp(t[2 * k])
        out = np.full(5, np.nan)
        out[0] = E
        terms = {"n": [(1, 2)], "d": [(3, 4)], "nd": [(1, 2), (3, 4)]}[law]
        for j, (ic, ip) in enumerate(terms):
            out[ic], out[ip] = np.exp(t[j]), t[k + j]
        return out

    best = natural(theta)

    # Bootstrap: resample rows, refit from the optimum plus a few grid points, keep percentiles.
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


# ---------------------------------------------------------------------------------------
# The compute-optimal frontier


@dataclass(frozen=True, eq=False)
class ComputeOptimal:
    """Where to spend compute C = 6 N D (Hoffmann et al. 2022, Eq. 4 and App. D.2)."""

    C: np.ndarray  # (K,) FLOP
    n_opt: np.ndarray  # (K,) parameters, G (C/6)^a
    d_opt: np.ndarray  # (K,) tokens, G^-1 (C/6)^b
    n_opt_ci: np.ndarray  # (K, 2) 95% bootstrap interval; nan if the fit has no bootstrap
    d_opt_ci: np.ndarray  # (K, 2)
    a: float  # N_opt ∝ C^a, a = beta / (alpha + beta)
    b: float  # D_opt ∝ C^b, b = alpha / (alpha + beta)
    G: float  # (alpha A / (beta B))^(1 / (alpha + beta))


def compute_optimal(fit: ScalingFit, C) -> ComputeOptimal:
    """N_opt, D_opt minimising L(N,D) subject to 6ND = C, with bootstrap intervals.

    Setting dL/dN = 0 along D = C/(6N) gives alpha A N^-alpha = beta B D^-beta, hence
    N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b with a, b, G as on :class:`ScalingFit`.
    """
    if fit.law != "nd":
        raise KnobsimError(f"the compute-optimal frontier needs an L(N,D) fit, not {fit.formula}")
    C = np.atleast_1d(np.asarray(C, dtype=float))
    if not np.all(np.isfinite(C)) or np.any(C <= 0):
        raise KnobsimError("compute C must be positive and finite (FLOP)")
    a, b, G = fit.a, fit.b, fit.G
    n_opt = G * (C / 6.0) ** a
    d_opt = (C / 6.0) ** b / G
    n_ci = np.full((C.size, 2), np.nan)
    d_ci = np.full((C.size, 2), np.nan)
    bt = fit.boot
    ok = np.all(np.isfinite(bt), axis=1)
    if ok.any():
        E_, A_, al_, B_, be_ = (bt[ok, j] for j in range(5))
        ab, bb, Gb = _allocation(al_, be_, A_, B_)
        with np.errstate(all="ignore"):
            nb = Gb[:, None] * (C[None, :] / 6.0) ** ab[:, None]  # (n_boot, K)
            db = (C[None, :] / 6.0) ** bb[:, None] / Gb[:, None]
        n_ci = np.nanpercentile(nb, [2.5, 97.5], axis=0).T
        d_ci = np.nanpercentile(db, [2.5, 97.5], axis=0).T
    return ComputeOptimal(
        C=C, n_opt=n_opt, d_opt=d_opt, n_opt_ci=n_ci, d_opt_ci=d_ci, a=a, b=b, G=G
    )


# ---------------------------------------------------------------------------------------
# A whole table


@dataclass(frozen=True, eq=False)
class TableFits:
    """The laws fitted to one table, and why any were left out."""

    fits: Mapping[str, ScalingFit]  # by law: "n", "d", "nd"
    skipped: Mapping[str, str]  # law -> reason, for laws "all" could not fit
    table: Table
    settings: Mapping[str, object]


def fit_table(
    table: Table,
    law: str = "all",
    *,
    floor: float | None = None,
    grid: str = "chinchilla",
    bootstrap: int = 200,
    seed: int = 0,
) -> TableFits:
    """Fit the laws `law` asks for ("n", "d", "nd" or "all": every law the columns allow).

    With "all", a law the table cannot support (a missing column, too few rows, one distinct
    value) is skipped with its reason; a law asked for by name raises instead.
    """
    if law not in (*LAWS, "all"):
        raise KnobsimError(f"unknown law '{law}'; choose n, d, nd or all")
    wanted = LAWS if law == "all" else (law,)
    fits: dict[str, ScalingFit] = {}
    skipped: dict[str, str] = {}
    kw = dict(floor=floor, grid=grid, bootstrap=bootstrap, seed=seed)
    for w in wanted:
        try:
            if w in ("n", "nd") and table.n is None:
                raise KnobsimError(f"{FORMULAS[w]} needs an N column; name it with --n-col")
            if w in ("d", "nd") and table.d is None:
                raise KnobsimError(
                    f"{FORMULAS[w]} needs a D column (or N and C); name it with --d-col or --c-col"
                )
            if w == "nd":
                fits[w] = fit_chinchilla(table.n, table.d, table.loss, **kw)
            else:
                fits[w] = fit_power_law(table.n if w == "n" else table.d, table.loss, var=w, **kw)
        except KnobsimError as e:
            if law != "all":
                raise
            skipped[w] = str(e)
    if not fits:
        raise KnobsimError(next(iter(skipped.values())))
    settings = {
        "grid": grid,
        "bootstrap": bootstrap,
        "seed": seed,
        "floor": floor,
        "huber_delta": HUBER_DELTA,
        "drop_highest": table.dropped,
    }
    return TableFits(
        fits=MappingProxyType(fits),
        skipped=MappingProxyType(skipped),
        table=table,
        settings=MappingProxyType(settings),
    )


def _jsonable(v):
    if v is None:
        return None
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    v = float(v)
    return v if math.isfinite(v) else None


def fit_to_dict(fit: ScalingFit) -> dict:
    """One law as plain JSON types: constants, their `_ci` intervals, r2, rows."""
    out: dict = {"law": fit.law, "formula": fit.formula}
    for name, v in fit.params().items():
        out[name] = _jsonable(v)
        out[f"{name}_ci"] = _jsonable(fit.ci.get(name))
    out.update(r2=_jsonable(fit.r2), n_rows=fit.n_rows, floor_fixed=fit.floor_fixed)
    return out


def table_fits_to_dict(tf: TableFits) -> dict:
    """The JSON object `knobsim fit --json` prints; the layout is documented on that command."""
    nd = tf.fits.get("nd")
    top: dict = {}
    for name in ("E", "A", "B", "alpha", "beta", "a", "b", "G"):
        top[name] = _jsonable(getattr(nd, name)) if nd else None
        top[f"{name}_ci"] = _jsonable(nd.ci.get(name)) if nd else None
    top["r2"] = _jsonable(nd.r2) if nd else None
    top["n_rows"] = nd.n_rows if nd else None
    return {
        "csv": tf.table.source,
        "rows_used": tf.table.rows,
        "rows_dropped": tf.table.dropped,
        "d_from": tf.table.d_from or None,
        **top,
        "laws": {law: fit_to_dict(f) for law, f in tf.fits.items()},
        "skipped": dict(tf.skipped),
        "settings": dict(tf.settings),
    }
