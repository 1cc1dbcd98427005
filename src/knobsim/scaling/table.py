"""CSV tables of runs: the one reader, and loss tables for the fits.

:func:`read_csv` is knobsim's one CSV parser; :func:`read_table` builds on it the loss
table the fits take (:mod:`knobsim.scaling.fit` fits what it returns), and
:func:`knobsim.scaling.results.read_rows` the typed rows of a sweep's results.csv. Bad
input raises :class:`~knobsim.errors.KnobsimError` with one line that says what is wrong
and how to fix it.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from knobsim.errors import KnobsimError

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


def read_csv(path: str | Path) -> tuple[list[str], list[list[str]]]:
    """(header, body): a CSV file's header row (names stripped) and its non-blank rows,
    cells as text; one clear error when it is missing, unreadable or empty."""
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
    return [h.strip() for h in rows[0]], rows[1:]


def _column(path: Path, body: list[list[str]], i: int, name: str) -> np.ndarray:
    """Column i of the body as positive finite floats; the first bad cell is the error."""
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
    header, body = read_csv(path)
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
        return _column(path, body, i, name)

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
