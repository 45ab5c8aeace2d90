"""Errors that are the user's to fix: the CLI prints them on one line and exits 2."""

from __future__ import annotations


class UsageError(Exception):
    """A user's mistake (bad flag, malformed file): message names the place and the problem."""

    exit_code = 2


_interruption = ["Ctrl-C"]


def note_interruption(name: str) -> None:
    """Remember what interrupted the run ("Ctrl-C", "SIGTERM"): SIGTERM arrives as Ctrl-C."""
    _interruption[0] = name


def interruption() -> str:
    """What interrupted the run, for messages: "Ctrl-C" unless a SIGTERM was noted."""
    return _interruption[0]


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``counted(1, "call")`` -> "1 call", ``counted(3, "call")`` -> "3 calls" (messages say
    numbers in the right number)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def a(word: str) -> str:
    """``a("agent")`` -> "an agent", ``a("model")`` -> "a model"."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"
