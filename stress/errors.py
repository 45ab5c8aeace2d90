"""Errors that are the user's to fix: the CLI prints them on one line and exits 2."""

from __future__ import annotations


class UsageError(Exception):
    """A user's mistake (bad flag, malformed file): message names the place and the problem."""

    exit_code = 2
