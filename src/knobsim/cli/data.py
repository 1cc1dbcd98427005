"""`knobsim data`: the language, a sample of its text, its exact entropy floor and (with
--ideal) its ideal learner's curve L*(K)."""

from __future__ import annotations

import json
import textwrap

import click

from knobsim.cli.options import language_options, language_from, _err_console

# How far the ideal fit's E may sit from the floor before the language is called not
# scale-free (issue 21's bar for the default language).
SCALE_FREE_TOLERANCE = 0.01


@click.command()
@click.option("--chars", type=click.IntRange(1, 100_000), default=400, show_default=True,
              help="Characters of sample text to print.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@click.option("--ideal", is_flag=True,
              help="Also compute the ideal learner's loss L*(K) (it knows the K most frequent words "
                   "exactly) and its E-free fit against the exact floor.")
@click.option("--json", "as_json", is_flag=True, help="Print the facts (and sample) as JSON.")
@language_options
def data(chars, seed, ideal, as_json, **lang_kw):
    """Show the synthetic language: a sample of text and its exact facts.

    \b
    Examples:
      knobsim data
      knobsim data --ideal
      knobsim data --preset english --ideal --json
    """
    import jax

    from knobsim.data import ideal as ideal_mod
    from knobsim.data.language import build_language
    from knobsim.data.sampler import decode, device_tables, sample_batch, words_needed

    lang = build_language(language_from(lang_kw))
    tables = device_tables(lang)
    tokens = sample_batch(tables, jax.random.key(seed), 1, chars - 1, words_needed(lang, chars - 1))
    text = decode(tokens[0])
    facts = lang.facts()
    learnable = ideal_mod.learnable_ranks(lang)
    rep = ideal_mod.report(lang) if ideal else None
    if as_json:
        click.echo(json.dumps({**facts, "learnable_rank": learnable, **(rep or {}), "sample": text}))
        return
    from rich.table import Table

    console = _err_console()
    console.print("[bold]sample[/]")
    console.print(textwrap.fill(text, width=88, initial_indent="  ", subsequent_indent="  "))
    t = Table(box=None, pad_edge=False, show_header=False)
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_column()
    t.add_row("vocabulary", f"{facts['vocab_size']}", "characters: space and a-z (one token each)")
    t.add_row("words", f"{facts['n_words']:,}", f"most frequent: {' '.join(lang.words[:8])}")
    t.add_row("zipf exponent", f"{facts['zipf_exponent']:g}", f"frequency ~ (rank + {facts['zipf_offset']:g})^-{facts['zipf_exponent']:g}")
    t.add_row("word length", f"{facts['syllables_per_decade']:g}",
              f"syllables more per decade of rank (lengths {lang.min_len}..{lang.max_len} letters)")
    t.add_row("successors", f"{facts['n_successors']}", f"favourites per word, taken with p = {facts['successor_weight']:g}")
    t.add_row("chars per word", f"{facts['mean_chars_per_word']:.4f}", "space included")
    t.add_row("word entropy", f"{facts['word_entropy_rate']:.4f}", "nats per word, exact")
    t.add_row("entropy floor", f"{facts['entropy_floor']:.4f}", "nats per char: no model can do better (exact)")
    t.add_row("bigram loss", f"{facts['bigram_loss']:.4f}", "best model that sees one previous char")
    t.add_row("unigram loss", f"{facts['unigram_loss']:.4f}", "best model that sees no context (char frequencies)")
    t.add_row("uniform loss", f"{facts['uniform_loss']:.4f}", "log 27: a model that knows nothing")
    t.add_row("learnable", " / ".join(f"{v:,}" for v in learnable.values()),
              f"words seen >= {ideal_mod.LEARNABLE_SEEN} times in {' / '.join(learnable)} characters")
    console.print("[bold]facts[/]")
    console.print(t)
    if rep is not None:
        print_ideal(console, rep)


def print_ideal(console, rep: dict) -> None:
    from rich.table import Table

    floor = rep["entropy_floor"]
    console.print("[bold]ideal learner[/]: knows the K most frequent words exactly (spelling and "
                  "successors), spells the rest from letter frequencies")
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("K", "L*(K) nats/char", "above floor"):
        t.add_column(col, justify="right")
    for row in rep["ideal"]:
        t.add_row(f"{row['K']:,}", f"{row['loss']:.4f}", f"{100 * (row['loss'] / floor - 1):.2f}%")
    console.print(t)
    f = rep["ideal_fit"]
    if f is None:
        console.print(f"no fit: a lexicon of {rep['ideal'][-1]['K']:,} words has less than a decade of K "
                      f"above 10 to fit; use --words 101 or more")
        return
    console.print(f"E-free fit L*(K) = E + A K^-alpha over K in [{f['k_min']:,}, {f['k_max']:,}]: "
                  f"E {f['E']:.4f} (floor {floor:.4f}, {100 * f['E_rel_error']:+.2f}%), "
                  f"alpha {f['alpha']:.3f}; local slope {f['slope_mean']:.3f} "
                  f"± {100 * f['slope_spread']:.0f}%")
    if abs(f["E_rel_error"]) > SCALE_FREE_TOLERANCE:
        console.print(f"[yellow]not scale-free:[/] even this perfect learner's fit puts the floor "
                      f"{100 * abs(f['E_rel_error']):.0f}% {'below' if f['E_rel_error'] < 0 else 'above'} "
                      f"the exact {floor:.4f}; a scaling fit on this language cannot recover it "
                      f"(docs/language.md)")
