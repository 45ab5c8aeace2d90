"""The linearizability checker: a generic engine, and the `mm` spec as a model for it.

The engine (`check`, `minimize`; values `Event`, `Model`/`BaseModel`, `CheckResult`,
`Counterexample`) knows nothing of the domain: it imports nothing from `mm`. Beside it, the mm
model (`MmModel`) with its sound reductions: the race pass, time cuts and footprint partitions
(`check_events`, `check_history`; `StreamCheck` checks a history fed as a stream, segment by
segment, in bounded memory), and counterexamples in words (`render`,
`counterexample_lines`). The verdict is `stress.verdict.Verdict`: OK, VIOLATION or UNKNOWN.
"""

from stress.checker._engine import check
from stress.checker._fast import Scanned, ScanUnsure, scan_file
from stress.checker._fast import enabled as fast_scan_enabled
from stress.checker._minimize import minimize, prefix_at
from stress.checker._mm_check import Tuning, check_events, minimized, witness
from stress.checker._mm_model import MmModel, check_history, describe_state, params_of, to_events
from stress.checker._mm_text import counterexample_lines, render, result_json
from stress.checker._race_pass import Finding, race_pass
from stress.checker._stream import BATCH_EVENTS, OutOfOrder, StreamCheck
from stress.checker._types import (
    BaseModel,
    CheckResult,
    Counterexample,
    Event,
    Model,
)
from stress.verdict import Verdict

__all__ = [
    "BATCH_EVENTS",
    "BaseModel",
    "CheckResult",
    "Counterexample",
    "Event",
    "Finding",
    "MmModel",
    "Model",
    "OutOfOrder",
    "ScanUnsure",
    "Scanned",
    "StreamCheck",
    "Tuning",
    "Verdict",
    "check",
    "check_events",
    "check_history",
    "counterexample_lines",
    "describe_state",
    "fast_scan_enabled",
    "minimize",
    "minimized",
    "params_of",
    "prefix_at",
    "race_pass",
    "render",
    "result_json",
    "scan_file",
    "to_events",
    "witness",
]
