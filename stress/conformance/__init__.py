"""The conformance matrix (`mmrace conformance`): the spec's public cases and the race
workloads against one target, one row per case (the spec's answer, the target's, agree or not
in the strict and compat readings); see `_run`."""

from stress.conformance._run import (
    AGREE,
    DISAGREE,
    FILE,
    NOT_RUN,
    SKIPPED,
    TEXT,
    Matrix,
    Row,
    run_conformance,
)

__all__ = [
    "AGREE",
    "DISAGREE",
    "FILE",
    "NOT_RUN",
    "SKIPPED",
    "TEXT",
    "Matrix",
    "Row",
    "run_conformance",
]
