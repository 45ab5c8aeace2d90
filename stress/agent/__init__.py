"""The agent: the kernel target's worker loop in a child process, `python -m stress.agent`.

`_worker` holds the reusable worker threads released together by a start gate (shared with the
in-process kernel and plug-in targets); `_child` is the child's side of the JSON-lines protocol
(docs/targets.md). The worker loop imports nothing else of mmrace, so it can run inside
emulators and sandboxes.
"""

from stress.agent._worker import (
    GATES,
    Call,
    Record,
    WorkerError,
    WorkerPool,
    op_args,
    overlap,
    spans_overlap,
)

__all__ = [
    "GATES",
    "Call",
    "Record",
    "WorkerError",
    "WorkerPool",
    "op_args",
    "overlap",
    "spans_overlap",
]
