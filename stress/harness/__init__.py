"""The stress harness: targets, the controlled scheduler, recording and the run orchestrator.

Public API: the `Target` protocol and its values (`CallRecord`, `RaceOutcome`,
`TargetOptions`), the two overlap measures `contested` and `really_raced`, and `make_target`
(the registry of target names).
"""

from stress.harness._target import (
    CallRecord,
    RaceOutcome,
    Target,
    TargetOptions,
    contested,
    really_raced,
)
from stress.harness.targets import TARGETS, make_target

__all__ = [
    "TARGETS",
    "CallRecord",
    "RaceOutcome",
    "Target",
    "TargetOptions",
    "contested",
    "make_target",
    "really_raced",
]
