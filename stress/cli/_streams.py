"""A closed stdout never changes a verdict; SIGTERM is handled like Ctrl-C.

`mmrace check BAD | head -2` closes the pipe while mmrace still prints. The run must still
finish, write its files and exit with its verdict's code, so stdout and stderr are wrapped:
the first write or flush that meets a closed pipe points the descriptor at /dev/null (so the
interpreter's final flush cannot fail either) and every later write is dropped quietly.

SIGTERM (a CI's timeout, `kill`) goes to the SIGINT handler of the moment, so each phase
treats it as its Ctrl-C: the race stops after its round, the check and the report phases end
as interrupted, the history is kept and judged, and the run exits 3 (UNKNOWN) unless what it
saw is a violation.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TextIO

from stress.errors import counting_sigint, note_interruption, note_signal


class GuardedStream:
    """A text stream whose reader may go away (see the module docstring)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._silence()

    def _silence(self) -> None:
        self.broken = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # not a real descriptor (a test's capture)
            pass
        with contextlib.suppress(OSError, ValueError):  # what is buffered goes to /dev/null
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


_OWNER = [0]  # the process that installed the handler (forked workers inherit it)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _OWNER[0]:  # a forked worker (the checker's pool) being stopped: die
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    note_interruption("SIGTERM")
    if signal.getsignal(signal.SIGINT) is not counting_sigint:
        note_signal()  # (counting_sigint counts it itself)
    # whatever handles Ctrl-C at this moment handles it (called directly: a signal raised
    # from within a handler is lost). A shell starts background jobs with SIGINT ignored:
    # SIGTERM still interrupts them.
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def _quiet_interrupts(info: Any) -> None:
    """Python prints a KeyboardInterrupt raised inside a ``__del__`` and drops it; the signal
    was counted (`stress.errors.signals_seen`) and the run handles it, so say nothing."""
    if info.exc_type is KeyboardInterrupt:
        return
    _UNRAISABLE[0](info)


_UNRAISABLE = [sys.__unraisablehook__]  # the hook before `guarded` (pytest's, in tests)


@contextmanager
def guarded() -> Iterator[None]:
    """Guard stdout and stderr and turn SIGTERM into Ctrl-C for the duration."""
    saved = sys.stdout, sys.stderr
    sys.stdout = GuardedStream(sys.stdout)
    sys.stderr = GuardedStream(sys.stderr)
    main = threading.current_thread() is threading.main_thread()
    _OWNER[0] = os.getpid()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main else None
    unraisable = _UNRAISABLE[0] = sys.unraisablehook
    sys.unraisablehook = _quiet_interrupts
    try:
        yield
    finally:
        sys.unraisablehook = unraisable
        if main:
            signal.signal(signal.SIGTERM, previous)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        sys.stdout, sys.stderr = saved
