"""Errors that are the user's to fix: the CLI prints them on one line and exits 2."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class UsageError(Exception):
    """A user's mistake (bad flag, malformed file): message names the place and the problem."""

    exit_code = 2


_interruption = ["Ctrl-C"]
_signals = [0]


def note_interruption(name: str) -> None:
    """Remember what interrupted the run ("Ctrl-C", "SIGTERM"): SIGTERM arrives as Ctrl-C."""
    _interruption[0] = name


def note_signal() -> None:
    """Count a Ctrl-C or SIGTERM as it arrives (see `signals_seen`)."""
    _signals[0] += 1


def signals_seen() -> int:
    """How many Ctrl-C/SIGTERM arrived so far. A KeyboardInterrupt raised while a ``__del__``
    runs is swallowed by Python: a phase compares this count before and after, so a signal
    is never lost."""
    return _signals[0]


def counting_sigint(signum: int, frame: object) -> None:
    """A SIGINT handler that counts the signal, then raises KeyboardInterrupt as usual."""
    note_signal()
    raise KeyboardInterrupt


@contextlib.contextmanager
def counting_signals() -> Iterator[None]:
    """Ctrl-C counted while the block runs (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, counting_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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


class CouldNotRun(Exception):
    """The run could not judge (a runtime that broke while starting, ...): the CLI prints the
    message on one line and exits with the UNKNOWN code of `stress.verdict` (3)."""


def seconds_from_env(name: str, default: float) -> float:
    """A positive number of seconds from environment variable `name` (else `default`); a bad
    value is a `UsageError` naming the variable and its value."""
    import os

    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name}={text}: not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise UsageError(f"{name}={text}: must be a positive, finite number of seconds")
    return value
