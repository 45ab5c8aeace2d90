"""Resolve `--variant NAME` to a core class, via `mm.variants` when that module exists.

Accepted shapes of `mm.variants` (the module is written later): a function `get(name)` or a
mapping `VARIANTS[name]`, giving either a core class (a `TrioCore` or `ThreadCore` subclass)
or an object with `trio` and `threads` attributes holding the two flavours' classes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import mm
from stress.errors import UsageError


def core_factory(variant: str | None, flavour: str) -> Callable[..., Any]:
    """The core class for `flavour` ("trio" or "threads"); the correct core when no variant."""
    base: type = mm.TrioCore if flavour == "trio" else mm.ThreadCore
    if variant is None:
        return base
    try:
        module = importlib.import_module("mm.variants")
    except ModuleNotFoundError:
        raise UsageError(
            f"--variant {variant}: bug variants are not available (no module mm.variants)"
        ) from None
    found: Any = None
    try:
        if hasattr(module, "get"):
            found = module.get(variant)
        elif hasattr(module, "VARIANTS"):
            found = module.VARIANTS[variant]
    except (KeyError, ValueError, LookupError):
        found = None
    if found is None:
        known = ""
        if hasattr(module, "VARIANTS"):
            known = f" (known: {', '.join(sorted(module.VARIANTS))})"
        raise UsageError(f"--variant: unknown variant {variant!r}{known}")
    if isinstance(found, type) and issubclass(found, base):
        return found
    attr = "trio" if flavour == "trio" else "threads"
    cls = getattr(found, attr, None) or getattr(found, f"{attr}_core", None)
    if isinstance(cls, type) and issubclass(cls, base):
        return cls
    raise UsageError(f"--variant {variant}: has no {flavour} core")
