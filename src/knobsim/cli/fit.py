"""`knobsim fit`: scaling laws fitted to any loss table, with bootstrap intervals.

Thin: options are parsed here, :func:`knobsim.scaling.table.read_table` and
:func:`knobsim.scaling.frontier.fit_table` do the work; this module lays the result out as rich
tables or JSON.
"""

from __future__ import annotations

import json
import time

import click
import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from knobsim.scaling import fit as S
from knobsim.scaling import frontier as F
from knobsim.scaling import table as T
from knobsim.scaling.objective import GRIDS
from knobsim.config import format_count

_NAMES = {  # constant -> (label, what it is)
    "E": ("E", "loss floor (irreducible loss)"),
    "A": ("A", "parameter-term coefficient"),
    "alpha": ("α", "parameter exponent"),
    "B": ("B", "data-term coefficient"),
    "beta": ("β", "data exponent"),
    "a": ("a = β/(α+β)", "N_opt ∝ C^a"),
    "b": ("b = α/(α+β)", "D_opt ∝ C^b"),
    "G": ("G", "N_opt = G (C/6)^a, D_opt = (C/6)^b / G"),
}


def _fmt(v: float | None) -> str:
    if v is None or not np.isfinite(v):
        return "—"
    return f"{v:.4g}"


def _interval(ci) -> str:
    return "—" if ci is None else f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"


def _law_table(tf: F.TableFits, fit: S.ScalingFit) -> Table:
    t = tf.table
    dropped = f" ({t.dropped} highest-loss left out)" if t.dropped else ""
    floor = "E fixed by --floor" if fit.floor_fixed else "E fitted"
    caption = f"R² = {_fmt(fit.r2)} on loss · {fit.n_rows} rows{dropped} · {floor}"
    if fit.law in ("n", "d"):
        other = t.d if fit.law == "n" else t.n
        if other is not None and other.max() > 1.5 * other.min():
            var, oth = ("N", "D") if fit.law == "n" else ("D", "N")
            this = t.n if fit.law == "n" else t.d
            if np.unique(np.stack([this, other], 1), axis=0).shape[0] == np.unique(this).size:
                caption += (
                    f"\nNote: {oth} changes with {var} in these rows (one {oth} per {var}), so "
                    f"L({var}) is the loss along that path, not at a fixed {oth}."
                )
            else:
                caption += (
                    f"\nNote: {oth} varies across these rows, so L({var}) mixes runs of different "
                    f"{oth}; read L(N,D) for such a table."
                )
    table = Table(
        title=fit.formula,
        caption=caption,
        box=box.SIMPLE_HEAD,
        title_justify="left",
        caption_justify="left",
        title_style="bold",
        caption_style="dim",
    )
    table.add_column("constant", no_wrap=True)
    table.add_column("value", justify="right")
    table.add_column("95% interval", justify="right", no_wrap=True)
    table.add_column("meaning", style="dim")
    params = fit.params()
    for name, value in params.items():
        if name == "a":
            table.add_section()
        label, meaning = _NAMES[name]
        ci = fit.ci.get(name)
        if name == "E" and fit.floor_fixed:
            ci, meaning = None, "loss floor, fixed"
        table.add_row(label, _fmt(value), _interval(ci), meaning)
    return table


def _frontier_line(tf: F.TableFits, fit: S.ScalingFit) -> str | None:
    t = tf.table
    if t.n is None or t.d is None:
        return None
    C = float(np.max(6.0 * t.n * t.d))
    fr = F.compute_optimal(fit, C)
    n, d = fr.n_opt[0], fr.d_opt[0]

    def ci(v) -> str:
        return f" [{format_count(v[0])}, {format_count(v[1])}]" if np.isfinite(v).all() else ""

    return (
        f"Compute-optimal at the table's largest C = 6ND = {C:.3g} FLOP: "
        f"N_opt = {format_count(n)}{ci(fr.n_opt_ci[0])} parameters, "
        f"D_opt = {format_count(d)}{ci(fr.d_opt_ci[0])} tokens, D/N = {d / n:.3g}."
    )


def _print(tf: F.TableFits, seconds: float) -> None:
    con = Console()
    t, s = tf.table, tf.settings
    d_from = f"; D = {t.d_from}" if t.d_from.startswith("C/") else ""
    con.print(f"[bold]{t.source}[/]: {t.rows} rows fitted{d_from}\n", highlight=False)
    for law in S.LAWS:
        if law in tf.fits:
            fit = tf.fits[law]
            con.print(_law_table(tf, fit))
            if fit.warning:
                con.print(f"[bold yellow]warning:[/] {fit.warning}", highlight=False, soft_wrap=True)
            if law == "nd":
                line = _frontier_line(tf, fit)
                if line:
                    con.print(line, highlight=False)
            con.print()
        elif law in tf.skipped:
            con.print(f"[dim]skipped: {tf.skipped[law]}[/]\n", highlight=False)
    starts = ", ".join(f"{f.n_starts} for {f.formula.split(' =')[0]}" for f in tf.fits.values())
    boot = "no bootstrap"
    if s["bootstrap"]:
        boot = f"{s['bootstrap']} bootstrap resamples (seed {s['seed']})"
    con.print(
        f"[dim]Huber loss (δ = {s['huber_delta']:g}) on log loss, minimised by L-BFGS-B from the "
        f"{s['grid']} grid (starts: {starts}); 95% intervals from {boot}. "
        f"Fitted in {seconds:.1f} s.[/]",
        highlight=False,
    )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--csv", "csv_path", required=True, metavar="FILE",
    help="table with a header row; one row per run",
)
@click.option("--n-col", default="N", show_default=True, help="column of parameter counts N")
@click.option("--d-col", default="D", show_default=True, help="column of training tokens D")
@click.option(
    "--c-col", default="C", show_default=True,
    help="column of training FLOP C; used for D = C/(6N) when there is no D column",
)
@click.option("--loss-col", default="loss", show_default=True, help="column of final losses")
@click.option(
    "--law",
    type=click.Choice(["n", "d", "nd", "all"]),
    default="all",
    show_default=True,
    help="n: L(N), d: L(D), nd: L(N,D); all: every law the columns allow",
)
@click.option(
    "--floor", type=float, default=None, metavar="VALUE",
    help="fix E at VALUE (e.g. the language's exact entropy) instead of fitting it",
)
@click.option(
    "--bootstrap", type=click.IntRange(min=0), default=200, show_default=True,
    help="bootstrap resamples for the 95% intervals (0: none)",
)
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the resampling")
@click.option(
    "--grid",
    type=click.Choice(list(GRIDS)),
    default="chinchilla",
    show_default=True,
    help="start grid: chinchilla = Hoffmann et al.'s 4500 starts for L(N,D); "
    "coarse = 243, ~20x faster",
)
@click.option(
    "--drop-highest", type=click.IntRange(min=0), default=0, show_default=True, metavar="K",
    help="leave out the K highest-loss rows (Besiroglu et al. 2024 drop 5 of Chinchilla's)",
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of tables")
def fit(
    csv_path, n_col, d_col, c_col, loss_col, law, floor, bootstrap, seed, grid, drop_highest,
    as_json,
):
    """Fit L(N) = E + A/N^α, L(D) = E + B/D^β and L(N,D) = E + A/N^α + B/D^β to a table.

    Columns hold raw counts (not logs). Every fit minimises a Huber loss (δ = 1e-3)
    between log loss and the law's log-sum-exp form with L-BFGS from a grid of starts,
    as Hoffmann et al. (2022, App. D.2) did, polished to tight tolerances as Besiroglu et
    al. (2024) advise. Intervals are 95% bootstrap percentiles over resampled rows. From
    L(N,D) comes the compute-optimal allocation for C = 6ND.

    \b
    Example (Chinchilla's runs as extracted by Epoch AI):
      knobsim fit --csv chinchilla_N_D_loss.csv --n-col N_params \\
          --d-col D_tokens --drop-highest 5

    \b
    --json prints one object:
      E, A, B, alpha, beta, a, b, G   constants of the L(N,D) fit (null without one);
                                      a, b, G as in N_opt = G (C/6)^a, D_opt = (C/6)^b / G
      <name>_ci                       [lo, hi], its 95% bootstrap interval (null if none)
      r2, n_rows                      of the L(N,D) fit
      laws                            {"n": {...}, "d": {...}, "nd": {...}}, one object per
                                      law fitted, with its own constants, <name>_ci, r2,
                                      n_rows, floor_fixed, formula
      skipped                         {law: reason} for laws --law all could not fit
      warnings                        {law: line} for laws the table cannot determine
                                      (also each law's "warning", null when determined)
      csv, rows_used, rows_dropped, d_from, settings
    """
    t0 = time.perf_counter()
    table = T.read_table(csv_path, n_col=n_col, d_col=d_col, c_col=c_col, loss_col=loss_col)
    table = T.drop_highest(table, drop_highest)
    tf = F.fit_table(table, law, floor=floor, grid=grid, bootstrap=bootstrap, seed=seed)
    seconds = time.perf_counter() - t0
    if as_json:
        obj = F.table_fits_to_dict(tf)
        for name, f in tf.fits.items():
            obj["laws"][name]["warning"] = f.warning
        obj["warnings"] = {name: f.warning for name, f in tf.fits.items() if f.warning}
        click.echo(json.dumps(obj, indent=2, ensure_ascii=False))
    else:
        _print(tf, seconds)
