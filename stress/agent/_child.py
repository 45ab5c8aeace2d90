"""The agent child, ``python -m stress.agent``: the kernel target's worker loop in a process.

The parent (`stress.harness._agent.AgentTarget`) starts it, possibly under a wrapper (an
emulator or sandbox that runs Linux programs), and talks JSON Lines over its stdin/stdout
(protocol: docs/targets.md). Standard library only (threads, ctypes, json, os): runtimes with a
partial Linux often run CPython but not trio's I/O machinery, and a lean child starts fast. It
does what the in-process kernel target does, with its own fenced space (`_space`): reusable
worker threads released together by a start gate (`_worker`), arenas verified free in its own
/proc/self/maps, the interference probe before every race, the content oracle, everything
unmapped at the end.

``python -m stress.agent --hello`` prints the hello line and exits (the parent's probe).

Test-only fault injection: ``MMRACE_AGENT_FAULT=exit:R`` (or ``kill:R``, ``hang:R``) makes
the child run race round R and then exit with status 3 (be killed by SIGKILL, sleep forever)
instead of answering, so the parent's handling of a dying agent can be tested; with ``open``
for R (``kill:open``) the child does so on the open request, right after its hello (a runtime
that breaks while starting).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import IO, Any

from stress.agent._space import PAGE, Refused, Space, WireOp, host_params, page_len
from stress.agent._worker import GATES, Record, WorkerError, WorkerPool, spans_overlap

PROTOCOL = 1
SENTINEL_PAGES = 64  # setup pages given sentinel bytes per round, at most
SENTINEL_SIZE = 16
_RW = 3  # PROT_READ | PROT_WRITE
USAGE = "usage: python -m stress.agent [--hello]"


def hello() -> dict[str, Any]:
    """Who and where the child is: sent first, before anything else."""
    return {
        "type": "hello",
        "protocol": PROTOCOL,
        "pid": os.getpid(),
        "uname": list(os.uname()),
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "engine": "python",
        "now_ns": time.monotonic_ns(),
        "params": host_params(),
    }


OPEN = -1  # the fault's round for "open"


def _fault() -> tuple[str, int] | None:
    text = os.environ.get("MMRACE_AGENT_FAULT", "")
    kind, _, at = text.partition(":")
    if kind in ("exit", "kill", "hang") and (at.isdigit() or at == "open"):
        return kind, OPEN if at == "open" else int(at)
    return None


def _inject(kind: str) -> None:
    if kind == "exit":
        os._exit(3)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    while True:
        time.sleep(3600)


def wire_op(op: Any) -> WireOp:
    """A wire op [kind, addr, length, prot, flags], checked."""
    kind, addr, length, prot, flags = op
    if kind not in ("mmap", "munmap", "mprotect"):
        raise Refused(f"unknown op kind {kind!r}")
    return str(kind), int(addr), int(length), int(prot), int(flags)


class Agent:
    """One child's state: its space, its worker pool, the sentinels of the current round."""

    def __init__(self) -> None:
        self.space: Space | None = None
        self.pool: WorkerPool | None = None
        self.sentinels: dict[int, bytes] = {}
        self.sentinel_round = -1

    def open(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.space is not None:
            raise Refused("agent: open sent twice")
        gate = request.get("gate", "barrier")
        if gate not in GATES:
            raise Refused(f"agent: gate {gate!r} is not one of {', '.join(GATES)}")
        space = Space()
        data = request["space"]
        base, size = int(data["base"]), int(data["size"])
        wanted = [(base, base + size)]
        for lo, hi in request.get("regions", []):
            wanted.append((int(lo) // PAGE * PAGE, -(-int(hi) // PAGE) * PAGE))
        merged: list[list[int]] = []
        for lo, hi in sorted(wanted):
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        for lo, hi in merged:
            space.reserve(lo, hi)
        self.space = space
        self.pool = WorkerPool(int(request["tasks"]), gate=gate, name="mmrace-agent", inline=True)
        return {"type": "ready", "arenas": space.describe(), "now_ns": time.monotonic_ns()}

    def round(self, request: dict[str, Any], fault: tuple[str, int] | None) -> dict[str, Any]:
        space, pool = self.space, self.pool
        if space is None or pool is None:
            raise Refused("agent: round before open")
        r = int(request["round"])
        plans = [[wire_op(op) for op in plan] for plan in request["plans"]]
        bound = [[space.bind(op) for op in plan] for plan in plans]
        problems: list[str] = []
        content = None
        if request.get("mode") == "serial":
            ops = plans[0] if plans else []
            raw = [self._serial(bound[0] if bound else [])]
            space.note(ops, [rec[0] for rec in raw[0]])
            self._plant(r, ops, raw[0])
            overlapped = False
        else:
            problems = space.foreign()
            try:
                raw = pool.run_round(bound)
            except WorkerError as exc:  # never expected: the raw calls do not raise
                raise Refused(f"agent: {exc}") from None
            for ops, got in zip(plans, raw, strict=False):
                space.note(ops, [rec[0] for rec in got])
            overlapped = spans_overlap(raw)
            content = self._read_back(r)
            if fault is not None and fault[1] == r:
                _inject(fault[0])
        answer: dict[str, Any] = {
            "type": "result",
            "round": r,
            "records": [[list(rec) for rec in got] for got in raw[: len(plans)]],
            "problems": problems,
            "overlapped": overlapped,
        }
        if content is not None:  # the content oracle's findings (docs/targets.md)
            answer["content"] = content
        return answer

    @staticmethod
    def _serial(calls: Sequence[tuple[Any, tuple[int, ...]]]) -> list[Record]:
        clock = time.monotonic_ns
        out: list[Record] = []
        for fn, args in calls:
            call = clock()
            result = fn(*args)
            out.append((result, call, clock()))
        return out

    # --- content oracle (as the kernel target's: docs/targets.md) ---------------------------

    def _plant(self, r: int, ops: Sequence[WireOp], raw: Sequence[Record]) -> None:
        """Sentinel bytes into the pages this serial batch left mapped READ|WRITE in an arena;
        a later call of the batch that touched a page takes it back."""
        assert self.space is not None
        if r != self.sentinel_round:
            self.sentinels, self.sentinel_round = {}, r
        wanted = self.sentinels
        if not wanted and not any(op[3] & _RW == _RW for op in ops):
            return
        fresh: dict[int, None] = {}
        for op, (result, _call, _ret) in zip(ops, raw, strict=False):
            if result is None or result < 0:
                continue
            kind, addr, length, prot, _flags = op
            made = kind == "mmap"
            lo = result if made else addr - addr % PAGE
            hi = lo + page_len(length)
            for page in [a for a in (*wanted, *fresh) if lo <= a < hi]:
                wanted.pop(page, None)
                fresh.pop(page, None)
            if made and prot & _RW == _RW and self.space._inside(lo, hi):
                room = max(SENTINEL_PAGES - len(wanted) - len(fresh), 0)
                for page in range(lo, min(hi, lo + room * PAGE), PAGE):
                    fresh[page] = None
        if not fresh:
            return
        prot_at = self.space.protections(fresh)
        for page in fresh:
            if prot_at.get(page, 0) & _RW == _RW:
                data = b"mmrace:" + page.to_bytes(8, "little") + bytes([r & 0xFF])
                ctypes.memmove(page, data, SENTINEL_SIZE)
                wanted[page] = data

    def _read_back(self, r: int) -> dict[str, Any] | None:
        assert self.space is not None
        planted, self.sentinels = self.sentinels, {}
        if not planted or self.sentinel_round != r:
            return None
        prot_at = self.space.protections(planted)
        changed: list[list[int | str]] = []
        checked = 0
        for page, data in planted.items():
            found = prot_at.get(page)
            if found is None:
                changed.append([page, "unmapped"])
                continue
            if not found & 1:
                continue  # not readable (a racing mprotect): cannot look
            checked += 1
            now = ctypes.string_at(page, SENTINEL_SIZE)
            if now != data:
                changed.append([page, "zeroed" if not any(now) else "replaced"])
        return {"checked": checked, "changed": changed}

    def close(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.close()
        space, self.space = self.space, None
        if space is not None:
            space.close()


def serve(inp: IO[bytes], out: IO[bytes]) -> int:
    """Answer requests until "bye" or end of input; the exit status."""

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        out.flush()

    fault = _fault()
    agent = Agent()
    send(hello())
    try:
        while True:
            line = inp.readline()
            if not line:
                return 0
            try:
                request = json.loads(line)
                kind = request.get("type")
                if kind == "bye":
                    agent.close()
                    send({"type": "bye"})
                    return 0
                if kind == "open":
                    if fault is not None and fault[1] == OPEN:
                        _inject(fault[0])
                    send(agent.open(request))
                elif kind == "round":
                    send(agent.round(request, fault))
                else:
                    raise Refused(f"agent: unknown request type {kind!r}")
            except Refused as exc:
                send({"type": "error", "message": str(exc)})
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                send({"type": "error", "message": f"agent: malformed request: {exc}"})
    finally:
        agent.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["--help"], ["-h"]):
        print(f"{USAGE}\n\nThe agent child of mmrace's agent target (docs/targets.md).")
        return 0
    # The protocol owns the original stdout; stray prints (ours or a library's) go to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    if argv == ["--hello"]:
        out.write(json.dumps(hello()).encode() + b"\n")
        out.flush()
        return 0
    if argv:
        print(f"{USAGE} (got {' '.join(argv)})", file=sys.stderr)
        return 2
    return serve(sys.stdin.buffer, out)
