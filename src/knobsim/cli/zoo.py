"""`knobsim zoo` and `knobsim count`: published models and your own designs, counted exactly.

Thin: options are parsed and checked here, all numbers come from :mod:`knobsim.zoo`; this
module only lays them out as rich tables or JSON. Every table fits 80 columns; the tables
of all rows are in :mod:`knobsim.cli.zoo_tables`.
"""

from __future__ import annotations

import json

import click
from rich import box
from rich.console import Console
from rich.table import Table

from knobsim import zoo as Z
from knobsim.cli.zoo_tables import console, machine_line, print_tables
from knobsim.config import parse_count
from knobsim.errors import KnobsimError

POSITIVE = click.IntRange(min=1)
MFU_OPTION = click.option(
    "--mfu", type=click.FloatRange(0, 1, min_open=True), default=None, metavar="FRACTION",
    help="fraction of this machine's measured fp32 matmul peak that a training step "
    "sustains (MFU), for the training times. [default: the MFU `knobsim train --record-mfu` "
    "measured for the largest transformer it has trained on this machine, kept in "
    "$KNOBSIM_CACHE/mfu.json (default ~/.cache/knobsim/mfu.json); until one has been "
    f"recorded, {Z.ASSUMED_MFU:g} ({Z.fmt_mfu(Z.ASSUMED_MFU)}), an assumption]",
)


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2))


# --------------------------------------------------------------------------------------
# knobsim zoo


def _print_model(r: dict) -> None:
    con = console()
    con.print(f"[bold]{r['name']}[/] ({r['year']})  key: {r['key']}")
    _print_breakdown(con, r)
    pub, off = r["published"], r["official_exact"]
    con.print(f"published: {pub['figure']}  (the exact count is "
              f"{Z.fmt_relative(pub['relative_difference'])} from it)")
    if "paper_embedding" in pub:
        con.print(f"the paper's exact counts: embedding {pub['paper_embedding']:,}, "
                  f"non-embedding {pub['paper_nonembedding']:,}")
    if off["params"] is None:
        con.print(f"released weights: none ({off['source']})", highlight=False)
    else:
        verdict = "[green]✓ equal[/]" if off["matches"] else "[red]✗ DIFFERENT[/]"
        con.print(f"released weights: {off['params']:,} {verdict}  [dim]({off['source']})[/]")
    for note in r["notes"]:
        con.print(f"note: {note}", highlight=False, markup=False)
    _print_cost(con, r)
    con.print("sources:")
    for s in r["sources"]:
        con.print(f"  - {s}", highlight=False, markup=False)
    con.print(f"  - training tokens: {r['compute']['published_tokens_source']}",
              highlight=False, markup=False)


def _print_breakdown(con: Console, r: dict) -> None:
    """The architecture in words and its count by component."""
    a, p = r["architecture"], r["params"]
    con.print(
        f"architecture: vocab {a['vocab']:,}, d_model {a['d_model']}, layers {a['n_layer']}, "
        f"heads {a['n_head']} (kv {a['n_kv_head']}, head_dim {a['head_dim']}), "
        f"d_ff {a['d_ff']}{' gated' if a['gated_mlp'] else ''}, context {a['context']:,}, "
        + ("learned positions" if a["learned_pos"] else "no position weights (rotary/none)")
        + f", {'tied' if a['tied_embeddings'] else 'untied'} unembedding, {a['norm']}"
        + (", biases" if a["attn_bias"] or a["mlp_bias"] else ", no biases")
        + (", post-norms" if a["post_norms"] else "") + (", qk-norm" if a["qk_norm"] else "")
        + ("" if a["final_norm"] else ", no final norm"),
        highlight=False,
    )
    t = Table(box=box.SIMPLE_HEAD)
    t.add_column("component")
    t.add_column("parameters", justify="right")
    t.add_column("share", justify="right")
    for k, v in p["breakdown"].items():
        t.add_row(k, f"{v:,}", f"{v / p['total']:.1%}")
    t.add_section()
    t.add_row("embedding", f"{p['embedding']:,}", f"{p['embedding'] / p['total']:.1%}")
    t.add_row("non-embedding", f"{p['nonembedding']:,}",
              f"{p['nonembedding'] / p['total']:.1%}")
    t.add_row("[bold]total[/]", f"[bold]{p['total']:,}[/]", "100%")
    con.print(t)


def _print_cost(con: Console, r: dict) -> None:
    """Memory, training compute and time on this machine."""
    mem, c, m = r["memory_bytes"], r["compute"], r.get("this_machine")
    con.print(f"weights: {Z.fmt_bytes(mem['fp32'])} in fp32, {Z.fmt_bytes(mem['bf16'])} in "
              f"bf16; training with AdamW in fp32: {Z.fmt_bytes(mem['adamw_fp32_train'])} "
              "(16 bytes/param, activations not included)")
    for label, key in (("published", "published"), ("--tokens", "given"),
                       ("20 per parameter", "chinchilla")):
        e = c.get(key)
        if not e:
            continue
        here = f" = {Z.fmt_duration(e['seconds_here'])} on this machine" if m else ""
        con.print(f"training on {Z.fmt_tokens(e['tokens'])} tokens ({label}): "
                  f"C = 6ND = {Z.fmt_flop(e['flop'])} FLOP{here}", highlight=False)
    if m:
        tp = Z.Throughput(m["peak_flops"], m["mfu"], m["mfu_source"])
        con.print(f"{machine_line(tp)}.", highlight=False)


@click.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True,
              help="print JSON (one model with NAME, else every row)")
@MFU_OPTION
def zoo(name: str | None, as_json: bool, mfu: float | None) -> None:
    """Published models: exact counts, memory, compute.

    GPT-1 to Llama 3.1 405B, each counted from its architecture and checked against its
    released weights; weight memory, AdamW training memory, training FLOP and the time
    this machine would take (its measured peak x an MFU: see --mfu). Below them, the
    rows without an architecture: GPT-4 and frontier estimates, knobsim's small
    models, and the brain's neurons and synapses (biology, not comparable one to one).

    NAME shows one row in full, e.g. gpt2-small, gpt3-175b, llama-3.1-8b, gemma-2b
    (case-insensitive; Hugging Face ids work too).
    """
    row = Z.find(name) if name is not None else None  # a bad name fails before measuring
    if isinstance(row, Z.Reported):
        r = Z.reported_report(row)
        if as_json:
            _echo_json(r)
        else:
            con = console()
            con.print(f"[bold]{row.name}[/]: {row.figure} {row.unit}  "
                      f"[yellow]({Z.KIND_LABELS[row.kind]})[/]")
            con.print(f"source: {row.source}", highlight=False)
            if row.note:
                con.print(f"note: {row.note}", highlight=False)
            if row.command:
                con.print(f"try: [bold]{row.command}[/]")
        return
    tp = Z.throughput(mfu)
    if row is not None:
        r = Z.model_report(row, tp)
        _echo_json(r) if as_json else _print_model(r)
    elif as_json:
        _echo_json({
            "models": [Z.model_report(m, tp) for m in Z.MODELS],
            "reported": [Z.reported_report(x) for x in Z.REPORTED],
        })
    else:
        print_tables(tp)


# --------------------------------------------------------------------------------------
# knobsim count


def _tokens(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_count(value, what="--tokens")
    except KnobsimError as e:  # name the option in the one error line
        raise click.BadParameter(str(e), ctx=ctx, param=param) from None


@click.command()
@click.option("--like", metavar="MODEL",
              help="start from a zoo model (e.g. llama-3.1-8b); other options override it")
@click.option("--vocab", type=POSITIVE, help="vocabulary size in tokens")
@click.option("--d-model", type=POSITIVE, help="residual stream width")
@click.option("--layers", type=POSITIVE, help="decoder blocks")
@click.option("--heads", type=POSITIVE, help="query heads")
@click.option("--kv-heads", type=POSITIVE, help="key/value heads, GQA  [default: heads]")
@click.option("--head-dim", type=POSITIVE, help="width per head  [default: d_model/heads]")
@click.option("--d-ff", type=POSITIVE,
              help="MLP hidden width, per branch when gated  [default: 4 x d_model]")
@click.option("--gated/--no-gated", default=None,
              help="gated MLP (SwiGLU/GeGLU: 3 matrices)  [default: no]")
@click.option("--context", type=POSITIVE,
              help="max sequence length; counts only with --pos learned  [default: 1024]")
@click.option("--pos", type=click.Choice(["learned", "rotary", "none"]), default=None,
              help="position encoding; only learned has weights  [default: learned]")
@click.option("--tied/--untied", default=None,
              help="unembedding shares the token embedding  [default: tied]")
@click.option("--bias/--no-bias", default=None,
              help="biases in attention and MLP  [default: bias]")
@click.option("--norm", type=click.Choice(["layernorm", "rmsnorm"]), default=None,
              help="layernorm has scale and bias, rmsnorm scale only  [default: layernorm]")
@click.option("--post-norms/--no-post-norms", default=None,
              help="extra norms after attention and MLP (Gemma 2)  [default: no]")
@click.option("--qk-norm/--no-qk-norm", default=None,
              help="RMSNorm on queries and keys per head  [default: no]")
@click.option("--final-norm/--no-final-norm", default=None,
              help="a norm before the unembedding (GPT-1 has none)  [default: yes]")
@click.option("--tokens", callback=_tokens, metavar="COUNT",
              help="training tokens for the compute line, e.g. 300B or 1e9 "
              "(20 per parameter is always shown)")
@MFU_OPTION
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def count(like, vocab, d_model, layers, heads, kv_heads, head_dim, d_ff, gated, context,
          pos, tied, bias, norm, post_norms, qk_norm, final_norm, tokens, mfu, as_json):
    """Count the parameters of any decoder-only transformer, exactly.

    Give the dimensions (--vocab --d-model --layers --heads at least), or start from a
    published model with --like and change what you want. Example, GPT-2 small:

        knobsim count --vocab 50257 --d-model 768 --layers 12 --heads 12
    """
    base: dict = {}
    if like is not None:
        row = Z.find(like)
        if not isinstance(row, Z.Model):
            raise click.BadParameter(f"'{like}' has no published architecture",
                                     param_hint="--like")
        base = Z.spec_dict(row.spec)
        # A head width that was d_model/heads follows new dimensions; one fixed by design
        # (Gemma's 256) stays. Kept KV heads that no longer divide the heads are an error.
        s = row.spec
        if (heads is not None or d_model is not None) and s.hd * s.n_head == s.d_model:
            base["head_dim"] = None
    given = {
        "vocab": vocab, "d_model": d_model, "n_layer": layers, "n_head": heads,
        "n_kv_head": kv_heads, "head_dim": head_dim, "d_ff": d_ff, "gated_mlp": gated,
        "context": context, "tied_embeddings": tied, "norm": norm, "post_norms": post_norms,
        "qk_norm": qk_norm, "final_norm": final_norm,
        "learned_pos": None if pos is None else pos == "learned",
        "attn_bias": bias, "mlp_bias": bias,
    }
    fields = base | {k: v for k, v in given.items() if v is not None}
    for f, opt in (("vocab", "--vocab"), ("d_model", "--d-model"), ("n_layer", "--layers"),
                   ("n_head", "--heads")):
        if f not in fields:
            raise click.UsageError(f"missing {opt}: give it, or start from a published "
                                   "model with --like (e.g. --like gpt2-small)")
    fields.setdefault("d_ff", 4 * fields["d_model"])  # the GPT convention
    spec = Z.make_spec(**fields)
    r = Z.count_report(spec, tokens=tokens, tp=Z.throughput(mfu))
    if as_json:
        _echo_json(r)
    else:
        con = console()
        _print_breakdown(con, r)
        _print_cost(con, r)
