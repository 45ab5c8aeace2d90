"""Stands in for a third-party library imported before mmrace loads a plug-in: its locks were
made outside plug-in code, before any patch, so they are the real ones."""

from __future__ import annotations

import threading

import trio

LOCK: threading.Lock | None = threading.Lock()
SHARED = threading.Lock()
_KEEP = [SHARED]  # the library keeps its own reference too
TRIO_LOCK = trio.Lock()


def make_lock() -> threading.Lock:
    """Hands over the only reference."""
    global LOCK
    lock, LOCK = LOCK, None
    assert lock is not None, "make_lock() is good for one object"
    return lock


def make_shared_lock() -> threading.Lock:
    return SHARED


def make_trio_lock() -> trio.Lock:
    return TRIO_LOCK
