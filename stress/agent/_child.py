"""The agent child, ``python -m stress.agent``: the kernel target's worker loop in a process.

The parent (`stress.harness._agent.AgentTarget`) starts it, possibly under a wrapper (an
emulator or sandbox that runs Linux programs), and talks JSON Lines over its stdin/stdout
(protocol: docs/targets.md). The child runs a `stress.harness._kernel.KernelTarget` of its own:
reusable worker threads released together by a start gate, arenas verified free in its own
/proc/self/maps, the interference probe before every race, everything unmapped at the end.

``python -m stress.agent --hello`` prints the hello line and exits (the parent's probe).

Test-only fault injection: ``MMRACE_AGENT_FAULT=exit:R`` (or ``kill:R``, ``hang:R``) makes
the child run race round R and then exit with status 3 (be killed by SIGKILL, sleep forever)
instead of answering, so the parent's handling of a dying agent can be tested.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import IO, Any

PROTOCOL = 1


def hello() -> dict[str, Any]:
    """Who and where the child is: sent first, before anything else."""
    import mm
    import mm.kernel

    return {
        "type": "hello",
        "protocol": PROTOCOL,
        "pid": os.getpid(),
        "uname": list(os.uname()),
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "now_ns": time.monotonic_ns(),
        "params": mm.kernel.host_params().to_json(),
    }


def _fault() -> tuple[str, int] | None:
    text = os.environ.get("MMRACE_AGENT_FAULT", "")
    kind, _, at = text.partition(":")
    if kind in ("exit", "kill", "hang") and at.isdigit():
        return kind, int(at)
    return None


def _inject(kind: str) -> None:
    if kind == "exit":
        os._exit(3)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    while True:
        time.sleep(3600)


class _Space:
    """The parent's `workloads.Space`, as far as the kernel target needs it."""

    def __init__(self, data: dict[str, int]) -> None:
        self.base = int(data["base"])
        self.size = int(data["size"])
        self.page_size = int(data.get("page_size", 4096))


async def serve(inp: IO[bytes], out: IO[bytes]) -> int:
    """Answer requests until "bye" or end of input; the exit status."""
    import mm
    import mm.kernel
    from stress.errors import UsageError
    from stress.harness import KernelTarget, TargetOptions

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        out.flush()

    fault = _fault()
    target: KernelTarget | None = None
    send(hello())
    try:
        while True:
            line = inp.readline()  # blocking is fine: nothing else runs in this trio loop
            if not line:
                return 0
            request = json.loads(line)
            kind = request.get("type")
            if kind == "bye":
                if target is not None:
                    await target.aclose()
                    target = None
                send({"type": "bye"})
                return 0
            try:
                if kind == "open":
                    if target is not None:
                        raise UsageError("agent: open sent twice")
                    target = KernelTarget(
                        TargetOptions(spec="kernel"),
                        gate=request.get("gate", "barrier"),
                        engine=str(request.get("engine", "python")),
                        regions=[(int(a), int(b)) for a, b in request.get("regions", [])],
                    )
                    await target.open(int(request["tasks"]), _Space(request["space"]))  # type: ignore[arg-type]
                    send(
                        {
                            "type": "ready",
                            "arenas": target.describe.get("arenas", []),
                            "now_ns": time.monotonic_ns(),
                        }
                    )
                elif kind == "round":
                    if target is None:
                        raise UsageError("agent: round before open")
                    r = int(request["round"])
                    plans = [[mm.Op(*map_op(op)) for op in plan] for plan in request["plans"]]
                    content = None
                    if request.get("mode") == "serial":
                        calls = await target.run_serial(r, plans[0] if plans else [])
                        problems: list[str] = []
                        overlapped = False
                    else:
                        outcome = await target.run_race(r, plans)
                        calls, problems = outcome.records, outcome.problems
                        overlapped, content = outcome.overlapped, outcome.content
                        if fault is not None and fault[1] == r:
                            _inject(fault[0])
                    records: list[list[list[int | None]]] = [[] for _ in plans]
                    for c in calls:
                        records[c.task].append([c.result, c.call, c.ret])
                    answer = {
                        "type": "result",
                        "round": r,
                        "records": records,
                        "problems": problems,
                        "overlapped": overlapped,
                    }
                    if content is not None:  # the content oracle's findings (docs/targets.md)
                        answer["content"] = content
                    send(answer)
                else:
                    raise UsageError(f"agent: unknown request type {kind!r}")
            except UsageError as exc:
                send({"type": "error", "message": str(exc)})
    finally:
        if target is not None:
            await target.aclose()


def map_op(op: list[Any]) -> tuple[str, int, int, int, int]:
    """A wire op [kind, addr, length, prot, flags] as `mm.Op` positional arguments."""
    kind, addr, length, prot, flags = op
    if kind not in ("mmap", "munmap", "mprotect"):
        raise ValueError(f"unknown op kind {kind!r}")
    return str(kind), int(addr), int(length), int(prot), int(flags)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # The protocol owns the original stdout; stray prints (ours or a library's) go to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    if argv == ["--hello"]:
        out.write(json.dumps(hello()).encode() + b"\n")
        out.flush()
        return 0
    if argv:
        print(f"usage: python -m stress.agent [--hello] (got {' '.join(argv)})", file=sys.stderr)
        return 2
    import trio

    return trio.run(serve, sys.stdin.buffer, out)
