"""A counterexample of the mm checker in words, shared by `mmrace check` and `mmrace run`."""

from __future__ import annotations

from typing import Any

from stress.checker._mm_model import MmModel
from stress.checker._types import CheckResult, Counterexample, Event
from stress.verdict import Verdict


def _time(stamp: int | None, origin: int, clock: str = "ns") -> str:
    """A stamp relative to ``origin``, in its clock's unit (ns/µs, or scheduler steps)."""
    if stamp is None:
        return "no response"
    delta = stamp - origin
    if clock == "steps":
        return f"step {delta}"
    return f"{delta} ns" if delta < 10_000 else f"{delta / 1000:.1f} µs"


def clock_of(header: Any) -> str:
    """The history's clock ("ns" or "steps", from its header's extra; "ns" when unsaid)."""
    extra = getattr(header, "extra", None) or {}
    return "steps" if extra.get("clock") == "steps" else "ns"


def render(model: MmModel, result: CheckResult, original: int | None, header: Any = None) -> str:
    """The verdict and counterexample in words."""
    lines = [f"{result.verdict.value}: {result.reason}"]
    if header is not None:
        lines.append(f"history: target {header.target}, workload {header.workload or '-'}")
    lines.append(
        f"operations: {result.operations}, partitions: {result.partitions} "
        f"({result.partitions_checked} checked), seconds: {result.seconds:.3f}"
    )
    cx = result.counterexample
    if cx is not None:
        candidate = result.verdict is not Verdict.VIOLATION
        lines.extend(
            counterexample_lines(model, cx, original, candidate=candidate, clock=clock_of(header))
        )
    return "\n".join(lines)


def counterexample_lines(
    model: MmModel,
    cx: Counterexample,
    original: int | None,
    *,
    candidate: bool = False,
    clock: str = "ns",
) -> list[str]:
    """The counterexample: its calls, the longest order found, and why each next call fails.

    ``candidate``: the check could not decide (UNKNOWN), so this is only the part it could not
    explain, labelled as such; its words describe the orders the search tried, not a proof."""
    events = cx.events
    origin = min(e.call for e in events)
    size = f"{len(events)} operations"
    if original is not None and original != len(events):
        size += f", minimized from {original}"
    what = "counterexample"
    if candidate:
        what = "candidate counterexample, NOT confirmed (the check could not decide)"
    lines = ["", f"{what} ({size}; times from its first call):"]
    order = sorted(range(len(events)), key=lambda k: (events[k].call, k))
    for k in order:
        e = events[k]
        lines.append(
            f"  [{k}] task {e.task}: {model.describe_operation(e)}   "
            f"({_time(e.call, origin, clock)} .. {_time(e.ret, origin, clock)})"
        )
    if cx.linearized:
        lines.append("longest order that explains a prefix:")
        for n, k in enumerate(cx.linearized, 1):
            lines.append(
                f"  {n}. [{k}] task {events[k].task}: {model.describe_operation(events[k])}"
            )
        lines.append("then no call can come next:")
    else:
        lines.append("no call can come first:")
    for k, why in cx.stuck:
        lines.append(f"  - [{k}] {why}")
    return lines


def _event_json(model: MmModel, k: int, e: Event) -> dict[str, Any]:
    op = e.input
    return {
        "index": k,
        "task": e.task,
        "kind": op.kind,
        "addr": op.addr,
        "length": op.length,
        "prot": op.prot,
        "flags": op.flags,
        "result": None if e.ret is None else e.output,
        "call": e.call,
        "ret": e.ret,
        "text": model.describe_operation(e),
    }


def result_json(model: MmModel, result: CheckResult, original: int | None) -> dict[str, Any]:
    """The result as one JSON-ready object."""
    cx = result.counterexample
    out: dict[str, Any] = {
        "verdict": result.verdict.value,
        "reason": result.reason,
        "operations": result.operations,
        "partitions": result.partitions,
        "partitions_checked": result.partitions_checked,
        "seconds": result.seconds,
        "counterexample": None,
    }
    if cx is not None:
        out["counterexample"] = {
            "events": [_event_json(model, k, e) for k, e in enumerate(cx.events)],
            "linearized": list(cx.linearized),
            "stuck": [{"index": k, "reason": why} for k, why in cx.stuck],
            "minimized_from": original,
            "confirmed": result.verdict is Verdict.VIOLATION,  # False: a candidate (UNKNOWN)
        }
    return out
