"""The tables of `knobsim zoo` (every row at once), each laid out to fit 80 columns.

Four narrow tables rather than one wide one: parameters; architecture and memory;
compute and time here; the rows without an architecture (estimates, knobsim's small end,
the brain). Numbers come from :mod:`knobsim.zoo`; this module only lays them out.
"""

from __future__ import annotations

import shutil
import sys

from rich import box
from rich.console import Console
from rich.table import Table

from knobsim import zoo as Z

# Every table is laid out to fit this many columns: piped output, a notebook and an
# 80-column terminal show all of it, with no name or number cut.
WIDTH = 80


def console() -> Console:
    # A wider terminal lets prose lines run longer. A narrower one still gets 80: the
    # terminal then wraps lines, which cuts nothing, where rich would cut cells with "…".
    # Piped output is 80 wide whatever the terminal (rich would read the terminal's size).
    cols = shutil.get_terminal_size((WIDTH, 24)).columns if sys.stdout.isatty() else WIDTH
    return Console(width=max(WIDTH, cols))


def _table(title: str, caption: str | None = None) -> Table:
    # No outer edge, padding collapsed: columns are two spaces apart.
    return Table(
        title=title, caption=caption, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
        collapse_padding=True, title_justify="left", caption_justify="left",
        title_style="bold", caption_style="dim",
    )


def _note_numbers() -> dict[str, int]:
    """Footnote number of each distinct note, in table order; shared notes share a number."""
    numbers: dict[str, int] = {}
    for m in Z.MODELS:
        for note in m.notes:
            numbers.setdefault(note, len(numbers) + 1)
    return numbers


def _marked(m: Z.Model, numbers: dict[str, int]) -> str:
    if not m.notes:
        return m.name
    return f"{m.name} [{','.join(str(numbers[n]) for n in m.notes)}]"


def _rows(t: Table, cells) -> Table:
    """One row per model, from ``cells(model)``; a rule between families."""
    family = None
    for m in Z.MODELS:
        if family is not None and m.family != family:
            t.add_section()
        family = m.family
        t.add_row(*cells(m))
    return t


def _params_table(numbers: dict[str, int]) -> Table:
    t = _table(
        "Parameters, counted exactly from each architecture",
        "✓ = equals the released checkpoint to the parameter (GPT-3's weights were never "
        "released). vs pub. = exact / published - 1. Embed. = token and position "
        "embeddings and an untied unembedding; Non-emb. = the rest. \\[n] = note n below.",
    )
    t.add_column("Model", no_wrap=True)
    t.add_column("Published", justify="right")
    t.add_column("Exact count", justify="right", no_wrap=True)
    t.add_column("vs pub.", justify="right")
    t.add_column("Embed.", justify="right")
    t.add_column("Non-emb.", justify="right")

    def cells(m: Z.Model):
        p = Z.model_report(m)["params"]
        if m.official is None:
            exact = f"[bold]{p['total']:,}[/]  "
        elif m.official == p["total"]:
            exact = f"[bold]{p['total']:,}[/] [green]✓[/]"
        else:  # the tests forbid this; make it loud if the data ever drifts
            exact = f"[bold]{p['total']:,}[/] [red]✗ ckpt {m.official:,}[/]"
        rel = p["total"] / m.published_params - 1
        return (_marked(m, numbers), m.published, exact, Z.fmt_relative(rel),
                Z.fmt_count(p["embedding"]), Z.fmt_count(p["nonembedding"]))

    return _rows(t, cells)


def _shape_table() -> Table:
    t = _table(
        "Architecture, and the memory its weights take",
        "L layers, d width, h query heads (/kv key-value heads, x head width where it is "
        "not d/h), ff MLP width (per branch when gated). Memory is weights only: bf16 = 2 "
        "bytes/param (fp32 twice that); AdamW = training in fp32, 16 bytes/param (weights, "
        "gradients, 2 moments), activations not included. 1 GB = 10^9 bytes.",
    )
    t.add_column("Model", no_wrap=True)
    t.add_column("Year", justify="right")
    t.add_column("Architecture", no_wrap=True, style="dim")
    t.add_column("bf16", justify="right", no_wrap=True)
    t.add_column("AdamW", justify="right", no_wrap=True)

    def cells(m: Z.Model):
        mem = Z.model_report(m)["memory_bytes"]
        return (m.name, str(m.year), Z.spec_summary(m.spec), Z.fmt_bytes(mem["bf16"]),
                Z.fmt_bytes(mem["adamw_fp32_train"]))

    return _rows(t, cells)


def _compute_table(tp: Z.Throughput) -> Table:
    t = _table(
        "Training compute C = 6·N·D FLOP, and how long this machine would take",
        f"N = total parameters (first table). D pub. = published training tokens (- = not "
        f"published); D = 20 N is compute-optimal (Hoffmann et al. 2022). {machine_line(tp)}.",
    )
    t.add_column("Model", no_wrap=True)
    t.add_column("D pub.", justify="right", no_wrap=True)
    t.add_column("C = 6ND", justify="right", no_wrap=True)
    t.add_column("Time here", justify="right", no_wrap=True)
    t.add_column("C, D = 20 N", justify="right", no_wrap=True)
    t.add_column("Time here", justify="right", no_wrap=True)

    def cells(m: Z.Model):
        c = Z.model_report(m, tp)["compute"]
        pub, chin = c["published"], c["chinchilla"]
        return (
            m.name,
            Z.fmt_tokens(pub["tokens"]) if pub else "-",
            Z.fmt_flop(pub["flop"]) if pub else "",
            Z.fmt_duration(pub["seconds_here"], short=True) if pub else "",
            Z.fmt_flop(chin["flop"]),
            Z.fmt_duration(chin["seconds_here"], short=True),
        )

    return _rows(t, cells)


def machine_line(tp: Z.Throughput) -> str:
    return (f"This machine: {Z.fmt_rate(tp.peak_flops)} measured fp32 matmul peak x MFU "
            f"{Z.fmt_mfu(tp.mfu)} ({tp.mfu_source}) = {Z.fmt_rate(tp.flops)} sustained")


def _reported_table() -> Table:
    t = _table("Not computed from an architecture: reported estimates, knobsim's small end, "
               "and the brain")
    t.add_column("Row", no_wrap=True)
    t.add_column("Figure", justify="right", no_wrap=True)
    t.add_column("What it is, and its source")
    label = {
        "estimate": "[yellow]reported estimate[/]",
        "knobsim": "[cyan]knobsim family[/]",
        "biology": "[magenta]biology: not comparable 1:1[/]",
    }
    kind = None
    for r in Z.REPORTED:
        if kind is not None and r.kind != kind:
            t.add_section()
        kind = r.kind
        # A command on a line of its own, so that it is never broken across lines.
        detail = f"{r.note} Try:\n[bold]{r.command}[/]" if r.command else f"{r.source} {r.note}"
        t.add_row(r.name, f"{r.figure}\n[dim]{r.unit}[/]", f"{label[r.kind]}. {detail.strip()}")
    return t


def print_tables(tp: Z.Throughput) -> None:
    con = console()
    numbers = _note_numbers()
    for table in (_params_table(numbers), _shape_table(), _compute_table(tp), _reported_table()):
        con.print(table)
        con.print()
    con.print("[bold]Notes[/]")
    for note, k in numbers.items():
        con.print(f" [{k}] {note}", highlight=False, markup=False)
    con.print(
        "\nOne model in full, with its sources: `knobsim zoo NAME` (e.g. gpt2-small, "
        "llama-3.1-8b; add --json for every number). Your own design: `knobsim count --help`.",
        highlight=False, markup=False,
    )
