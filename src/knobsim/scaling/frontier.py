"""What a fit implies: the compute-optimal frontier, every law of one table, and their JSON.

Builds on :mod:`knobsim.scaling.fit` (the fits) and :mod:`knobsim.scaling.table` (the
tables they come from).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from knobsim.errors import KnobsimError
from knobsim.scaling.fit import (
    FORMULAS,
    LAWS,
    ScalingFit,
    _allocation,
    fit_chinchilla,
    fit_power_law,
)
from knobsim.scaling.objective import HUBER_DELTA
from knobsim.scaling.table import Table


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
