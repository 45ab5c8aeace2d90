"""The one verdict vocabulary and the one exit-code table, used by every command.

OK: some atomic order explains every result and no round was graded as failing.
VIOLATION: none does, or a round's outcome is forbidden. UNKNOWN: the run or the check could
not judge (time budget, interference, a crashed agent, an interrupted run); never reported OK.
Exit codes: 0 OK, 1 VIOLATION, 2 bad usage or input (`stress.errors.UsageError`), 3 UNKNOWN.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Verdict(enum.Enum):
    """A judgement: OK, VIOLATION or UNKNOWN (see the module docstring)."""

    OK = "OK"
    VIOLATION = "VIOLATION"
    UNKNOWN = "UNKNOWN"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self]

    @classmethod
    def parse(cls, text: object) -> Verdict:
        """The verdict a file names; anything else is UNKNOWN (never OK by accident)."""
        try:
            return cls(text)
        except ValueError:
            return cls.UNKNOWN


EXIT_USAGE = 2
EXIT_CODES = {Verdict.OK: 0, Verdict.VIOLATION: 1, Verdict.UNKNOWN: 3}
_RANK = {Verdict.OK: 0, Verdict.UNKNOWN: 1, Verdict.VIOLATION: 2}


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """VIOLATION over UNKNOWN over OK; OK for none."""
    return max(verdicts, key=_RANK.__getitem__, default=Verdict.OK)


__all__ = ["EXIT_CODES", "EXIT_USAGE", "Verdict", "worst"]
