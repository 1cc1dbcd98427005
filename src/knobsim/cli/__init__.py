"""The knobsim command line. Thin: parse, validate, call the library.

Bad input never shows a traceback: every :class:`~knobsim.errors.KnobsimError` and every
click usage error becomes one line, ``knobsim <cmd>: error: ...``, and exit code 2.
"""

from __future__ import annotations

import sys

import click

from knobsim.errors import KnobsimError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="knobsim")
def cli():
    """knobsim: train models of 20 to 10^7 knobs on text with a known entropy floor,
    and watch loss scale and knobs move."""


# (module, command) pairs; each command lives in its own module and is imported only when
# the CLI starts. A module that does not exist yet is skipped; one that fails to import fails.
COMMANDS = [
    ("knobsim.cli.train", "train"),
    ("knobsim.cli.data", "data"),
    ("knobsim.cli.sweep", "sweep"),
    ("knobsim.cli.fit", "fit"),
    ("knobsim.cli.watch", "watch"),
    ("knobsim.cli.watch", "finetune"),
    ("knobsim.cli.zoo", "zoo"),
    ("knobsim.cli.zoo", "count"),
]


def _register_commands():
    import importlib
    import importlib.util

    for module, name in COMMANDS:
        if name in cli.commands or importlib.util.find_spec(module) is None:
            continue
        cli.add_command(getattr(importlib.import_module(module), name))


# click >= 8.2 raises this when a group is called without arguments (after printing help).
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", getattr(click.exceptions, "NoArgsIsHelp", ()))


def _one_line(msg: str) -> str:
    return " ".join(str(msg).split())


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `knobsim` console script and `python -m knobsim`."""
    if argv is None:  # a real process, not a test calling main([...])
        from knobsim.core import runtime

        runtime.setup()  # huge pages (may re-exec once) and the compilation cache
    _register_commands()
    args = sys.argv[1:] if argv is None else argv
    prog = "knobsim"
    try:
        rv = cli.main(args=args, prog_name=prog, standalone_mode=False)
    except _NO_ARGS_IS_HELP:
        with click.Context(cli, info_name=prog) as ctx:
            click.echo(cli.get_help(ctx))
        sys.exit(0)
    except click.UsageError as e:
        cmd = e.ctx.command_path if e.ctx is not None else prog
        hint = f" (see `{cmd} --help`)"
        click.echo(f"{cmd}: error: {_one_line(e.format_message())}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(f"{prog}: error: {_one_line(e.format_message())}", err=True)
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        sys.exit(130)
    except KnobsimError as e:
        name = f"{prog} {args[0]}" if args and not args[0].startswith("-") else prog
        label = "" if e.exit_code in (130, 143) else "error: "  # a requested stop is no error
        click.echo(f"{name}: {label}{_one_line(str(e))}", err=True)
        sys.exit(e.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)
