"""Options shared by the commands: counts, the language, watching, devices; the console."""

from __future__ import annotations


import click

from knobsim.config import LanguageConfig, parse_count
from knobsim.errors import KnobsimError


class Count(click.ParamType):
    """'1e5', '100k', '2.5M', '100000' -> int, with a one-line error otherwise."""

    name = "count"

    def __init__(self, minimum: int = 1):
        self.minimum = minimum

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            what = param.opts[0] if param is not None and param.opts else "value"
            return parse_count(value, what=what, minimum=self.minimum)
        except KnobsimError as e:
            # click already names the option ("Invalid value for '--params': ...").
            self.fail(str(e).removeprefix(f"{what} "), param, ctx)


def language_options(f=None, *, of_run: bool = False):
    """Options that pick the synthetic language (train, data, sweep): a preset, then any
    field of it overridden one by one. ``@language_options(of_run=True)`` (finetune: a shift
    of a run's language) declares the same options with every default None, "the run's";
    ``language_changes`` reads them."""
    if f is None:
        return lambda g: language_options(g, of_run=of_run)
    from knobsim.config import PRESETS

    d = LanguageConfig()

    def default(value: str) -> str:  # what an option left out means, for its help
        return "[default: the run's]" if of_run else f"[default: the preset's; {value}]"

    opts = [
        click.option("--preset", type=click.Choice(sorted(PRESETS)),
                     default=None if of_run else "scale-free", show_default=not of_run,
                     help=("The new language starts from this preset instead of the run's own; "
                           "the options below override its fields. [default: the run's language]")
                     if of_run else
                     ("The language: 'scale-free' (the default) or 'english', knobsim's first, "
                      "English-like language, on which even a perfect learner's fit misses the "
                      "floor (docs/language.md). The options below override its fields.")),
        click.option("--lang-seed", type=int, default=None,
                     help="Seed of the language itself (runs with one seed share a language). "
                          + ("[default: the run's]" if of_run else f"[default: {d.seed}]")),
        click.option("--words", "n_words", type=click.IntRange(2), default=None,
                     help=f"Lexicon size, at most 2^20. {default(f'{d.n_words:,}')}"),
        click.option("--zipf", type=click.FloatRange(0, 4, min_open=True), default=None,
                     help=f"Zipf exponent of word frequencies. {default(f'{d.zipf:g}')}"),
        click.option("--successors", "n_successors", type=click.IntRange(1), default=None,
                     help=f"Favourite successors per word. {default(str(d.n_successors))}"),
        click.option("--successor-weight", type=click.FloatRange(0, 1, max_open=True), default=None,
                     help=f"Probability that the next word is one of the favourites. "
                          f"{default(f'{d.successor_weight:g}')}"),
        click.option("--syllables-per-decade", type=click.FloatRange(0, 3), default=None,
                     help=f"How much longer words get per decade of rank (word length tied to "
                          f"surprisal). {default(f'{d.syllables_per_decade:g}')}"),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


_LANG_KEYS = {"lang_seed": "seed", "n_words": "n_words", "zipf": "zipf", "n_successors": "n_successors",
              "successor_weight": "successor_weight", "syllables_per_decade": "syllables_per_decade"}


def language_from(kw: dict) -> LanguageConfig:
    """The LanguageConfig of --preset with the given options overriding it (pops them)."""
    import dataclasses

    from knobsim.config import PRESETS

    base = PRESETS[kw.pop("preset", None) or "scale-free"]
    over = {field: kw.pop(opt) for opt, field in _LANG_KEYS.items() if opt in kw}
    return dataclasses.replace(base, **{k: v for k, v in over.items() if v is not None})


def language_changes(kw: dict) -> dict:
    """The options of ``language_options(of_run=True)`` as LanguageConfig fields to change
    (pops them): every field of --preset if given, then the options given; {} for none."""
    import dataclasses

    from knobsim.config import PRESETS

    preset = kw.pop("preset", None)
    out = dataclasses.asdict(PRESETS[preset]) if preset else {}
    over = {field: kw.pop(opt) for opt, field in _LANG_KEYS.items() if opt in kw}
    return {**out, **{k: v for k, v in over.items() if v is not None}}


def _err_console():
    """Human-readable output goes to stdout; when piped, rich would wrap at 80 columns."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=120)
    return console


def watch_options(f):
    """Options of knob watching (shared by train and finetune)."""
    from knobsim.watch.stats import WatchConfig

    d = WatchConfig()
    opts = [
        click.option("--watch/--no-watch", "watch", default=None,
                     help="Knob records are written by default; --watch also shows them live "
                          "in the terminal, --no-watch records nothing (fastest)."),
        click.option("--watch-every", type=click.IntRange(1), default=d.every, show_default=True,
                     help="Record knob statistics and dials every this many steps."),
        click.option("--dials", "knobs_per_tensor", type=click.IntRange(0, 1024),
                     default=d.knobs_per_tensor, show_default=True,
                     help="Sampled knobs (dials) per tensor whose values are recorded."),
        click.option("--no-snapshots", is_flag=True,
                     help="Skip the lossless weight snapshots at steps 0, 1, 2, 4, ... and the end."),
        click.option("--tensorboard", is_flag=True,
                     help="Also write TensorBoard event files (scalars, weight histograms) "
                          "into RUN/tensorboard."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def watch_from(kw: dict):
    """-> (WatchConfig or None, live view?); pops the watch options. TensorBoard is part of
    what a watched run records (WatchConfig.tensorboard)."""
    from knobsim.watch.stats import WatchConfig

    watch, every, k, no_snap, tb = (kw.pop(n) for n in ("watch", "watch_every", "knobs_per_tensor",
                                                         "no_snapshots", "tensorboard"))
    if watch is False:
        if every != 1 or no_snap or tb:
            raise KnobsimError("--watch-every, --no-snapshots and --tensorboard need watching; "
                               "drop --no-watch")
        return None, False
    return WatchConfig(every=every, knobs_per_tensor=k, snapshots=not no_snap, tensorboard=tb), bool(watch)


def parallel_options(f):
    """Many devices (parallel.py): how many to split the batch over; multi-host start.
    ``KNOBSIM_DEVICES`` (core.parallel.DEVICES_ENV) is read here, at the edge, as --devices."""
    f = click.option("--distributed", is_flag=True,
                     help="Multi-host: call jax.distributed.initialize first (also "
                          "KNOBSIM_DISTRIBUTED=1); see docs/devices.md.")(f)
    return click.option("--devices", type=click.IntRange(1), default=None, envvar="KNOBSIM_DEVICES",
                        show_envvar=True,
                        help="Devices to split each batch over (default: all JAX sees; on a CPU, "
                             "one CPU device per core for transformers up to 320k knobs, which "
                             "trains them faster; 1: no data parallelism). Recorded in the run's "
                             "config.")(f)


def parallel_from(kw: dict, cpu_default: int = 1) -> int | None:
    """Pop --devices / --distributed: start the multi-host run, check the device count, and
    return it (RunConfig.devices; None: all). Must come before anything touches JAX.

    On a CPU, ``--devices N`` makes N CPU devices (XLA_FLAGS' host device count), and without
    --devices a run takes ``cpu_default`` of them (parallel.cpu_split: one per core for a small
    transformer; a resumed run, its recorded count), unless XLA_FLAGS already says how many."""
    from knobsim.core import parallel

    devices, distributed = kw.pop("devices"), kw.pop("distributed")
    multi = parallel.distributed_requested(distributed)
    forced = parallel.force_cpu_devices(devices or (1 if multi else cpu_default))
    if multi:
        parallel.initialize_distributed()
    if devices is not None:
        parallel.data_mesh(n=devices)  # more devices than JAX sees: one line now, not mid-plan
        return devices
    return parallel.forced_cpu_count(cpu_default) if forced else None
