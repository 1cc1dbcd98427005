"""`knobsim data`: the language, a sample of its text and its exact entropy floor."""

from __future__ import annotations

import json
import textwrap

import click

from knobsim.cli.options import language_options, language_from, _err_console


@click.command()
@click.option("--chars", type=click.IntRange(1, 100_000), default=400, show_default=True,
              help="Characters of sample text to print.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@click.option("--json", "as_json", is_flag=True, help="Print the facts (and sample) as JSON.")
@language_options
def data(chars, seed, as_json, **lang_kw):
    """Show the synthetic language: a sample of text and its exact facts."""
    import jax

    from knobsim.data.language import build_language
    from knobsim.data.sampler import decode, device_tables, sample_batch, words_needed

    lang = build_language(language_from(lang_kw))
    tables = device_tables(lang)
    tokens = sample_batch(tables, jax.random.key(seed), 1, chars - 1, words_needed(lang, chars - 1))
    text = decode(tokens[0])
    facts = lang.facts()
    if as_json:
        click.echo(json.dumps({**facts, "sample": text}))
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
    t.add_row("successors", f"{facts['n_successors']}", f"favourites per word, taken with p = {facts['successor_weight']:g}")
    t.add_row("chars per word", f"{facts['mean_chars_per_word']:.4f}", "space included")
    t.add_row("word entropy", f"{facts['word_entropy_rate']:.4f}", "nats per word, exact")
    t.add_row("entropy floor", f"{facts['entropy_floor']:.4f}", "nats per char: no model can do better (exact)")
    t.add_row("bigram loss", f"{facts['bigram_loss']:.4f}", "best model that sees one previous char")
    t.add_row("unigram loss", f"{facts['unigram_loss']:.4f}", "best model that sees no context (char frequencies)")
    t.add_row("uniform loss", f"{facts['uniform_loss']:.4f}", "log 27: a model that knows nothing")
    console.print("[bold]facts[/]")
    console.print(t)
