"""Errors that are the user's to fix: the CLI prints them on one line and exits 2."""

from __future__ import annotations


class UsageError(Exception):
    """A user's mistake (bad flag, malformed file): message names the place and the problem."""

    exit_code = 2


class CouldNotRun(Exception):
    """The run could not judge (a runtime that broke while starting, ...): the CLI prints the
    message on one line and exits with the UNKNOWN code of `stress.verdict` (3)."""


def seconds_from_env(name: str, default: float) -> float:
    """A positive number of seconds from environment variable `name` (else `default`); a bad
    value is a `UsageError` naming the variable."""
    import os

    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise UsageError(f"${name}: expected a positive number of seconds, got {text!r}")
    return value
