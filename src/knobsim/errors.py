"""Errors that reach the user as one clear line.

Library code raises :class:`KnobsimError` for bad input; the CLI prints its message on one
line and exits with its ``exit_code`` (2 for bad input). Nothing else should be caught
broadly: a bug deserves its traceback.
"""

from __future__ import annotations


class KnobsimError(Exception):
    """Bad input or an impossible request: one line for the user, exit code 2."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
