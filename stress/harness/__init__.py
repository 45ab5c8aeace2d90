"""The harness: targets and the run loop. It races and records; it never grades or checks.

A `Target` (the model, OS threads on the model, the kernel, an agent child, a plug-in; found by
name with `make_target`) runs rounds and hands back `stress.history.Operation` records; `execute`
drives the rounds of a `RunConfig`, streams the history to the run directory and calls
`on_round(stats, RoundLog)` after each round. `contested` and `really_raced` measure whether a
round's calls really raced. `build_native` builds the shipped C sources into the per-user cache.
"""

from stress.harness._kernel import KernelTarget
from stress.harness._model import ModelTarget
from stress.harness._native import NativeUnavailable
from stress.harness._native import build as build_native
from stress.harness._registry import TARGETS, is_plugin, make_replay_target, make_target
from stress.harness._runner import (
    RoundHook,
    RoundLog,
    RunConfig,
    RunStats,
    StopFlag,
    execute,
    history_header,
    undo_moved,
)
from stress.harness._scheduler import ScheduleDiverged
from stress.harness._target import (
    RaceOutcome,
    Target,
    TargetOptions,
    contested,
    really_raced,
)

__all__ = [
    "TARGETS",
    "KernelTarget",
    "ModelTarget",
    "NativeUnavailable",
    "RaceOutcome",
    "RoundHook",
    "RoundLog",
    "RunConfig",
    "RunStats",
    "ScheduleDiverged",
    "StopFlag",
    "Target",
    "TargetOptions",
    "build_native",
    "contested",
    "execute",
    "history_header",
    "is_plugin",
    "make_replay_target",
    "make_target",
    "really_raced",
    "undo_moved",
]
