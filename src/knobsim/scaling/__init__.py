"""Scaling laws: sweeps that train, fits with bootstrap intervals, figures.

The fitting API is importable from here (lazily, so importing a sweep does not load scipy):
``from knobsim import scaling; scaling.fit_power_law(...)``. Its homes:
:mod:`knobsim.scaling.table` (read_table, drop_highest), :mod:`knobsim.scaling.fit`
(fit_power_law, fit_chinchilla), :mod:`knobsim.scaling.frontier` (compute_optimal,
fit_table, fit_to_dict, table_fits_to_dict).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Table": "knobsim.scaling.table",
    "read_table": "knobsim.scaling.table",
    "drop_highest": "knobsim.scaling.table",
    "ScalingFit": "knobsim.scaling.fit",
    "fit_power_law": "knobsim.scaling.fit",
    "fit_chinchilla": "knobsim.scaling.fit",
    "ComputeOptimal": "knobsim.scaling.frontier",
    "compute_optimal": "knobsim.scaling.frontier",
    "TableFits": "knobsim.scaling.frontier",
    "fit_table": "knobsim.scaling.frontier",
    "fit_to_dict": "knobsim.scaling.frontier",
    "table_fits_to_dict": "knobsim.scaling.frontier",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'knobsim.scaling' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
