"""One measured benchmark figure, as every `mmrace bench` part reports it."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class Figure:
    """A measured value next to its target; ``ok`` says it met the target (and any verdict
    measured along the way was right). ``target`` is None for a figure that only informs; a
    ``skipped`` figure was not measured and neither meets nor misses its target."""

    name: str
    value: float
    unit: str
    target: float | None
    ok: bool
    note: str = ""
    skipped: bool = False  # not measured (its data or tool is absent): the note says why

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)
