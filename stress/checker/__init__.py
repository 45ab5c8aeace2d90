"""The linearizability checker: a generic engine (imports nothing from `mm`) and its models.

Usage: ``check(model, events, timeout=...)`` with `Event` values and a `Model` (see
`BaseModel`); the result's ``verdict`` is OK, VIOLATION (with a `Counterexample`) or UNKNOWN.
"""

from stress.checker._engine import check
from stress.checker._minimize import minimize, prefix_at
from stress.checker._types import (
    BaseModel,
    CheckResult,
    Counterexample,
    Event,
    Model,
    Verdict,
)

__all__ = [
    "BaseModel",
    "CheckResult",
    "Counterexample",
    "Event",
    "Model",
    "Verdict",
    "check",
    "minimize",
    "prefix_at",
]
