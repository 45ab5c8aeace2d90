"""Resolve `--variant NAME` to the core class of one of `mm.variants`' built-in bugs."""

from __future__ import annotations

from typing import Any

import mm
import mm.variants
from stress.errors import UsageError


def core_factory(variant: str | None, flavour: str) -> type[Any]:
    """The core class for `flavour` ("trio" or "threads"); the correct core when no variant."""
    if variant is None:
        return mm.TrioCore if flavour == "trio" else mm.ThreadCore
    try:
        found = mm.variants.get(variant)
    except KeyError:
        known = ", ".join(mm.variants.names())
        raise UsageError(f"--variant: unknown variant {variant!r} (known: {known})") from None
    return found.trio if flavour == "trio" else found.threads
