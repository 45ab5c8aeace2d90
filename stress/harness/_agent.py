"""The agent target: the kernel target's worker loop in a child process, maybe under a wrapper.

``--target agent --wrapper "qemu-x86_64"`` runs ``qemu-x86_64 <sys.executable> -m stress.agent``
(the wrapper split with shlex): the racing calls are then made inside the emulator or sandbox,
which is what is under test. Without a wrapper the child is a plain second Python process.
With ``--agent native`` (`TargetOptions.agent`) the child is the static C agent instead
(`native/agent.c`, built into the per-user cache on first use by `_native.build`), for
runtimes that cannot run Python: ``qemu-x86_64 ~/.cache/mmrace/<hash>/mmrace-agent``.

The parent speaks JSON Lines over the child's stdin/stdout (docs/targets.md has the protocol):
hello, open, one request per serial batch or race, bye. Stamps are the child's monotonic ns.

Where it yields: only while sending a request and while waiting for its answer, under a
per-request deadline (`timeout`, else `TargetOptions.timeout` (`--agent-timeout`), else
$MMRACE_AGENT_TIMEOUT, else 10 s). A child that dies
(exit status or signal), sends garbage, or does not answer within the deadline is killed; the
calls of the request in flight are recorded as pending (result None), the race reports how the
child died as a problem (the run is then UNKNOWN unless a violation is already proven), and
later requests are not sent (nothing is recorded for them). Cancelling a request kills the
child: its state is unknown from then on.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import trio

import mm
from stress.errors import UsageError
from stress.harness._native import NativeUnavailable
from stress.harness._native import build as build_native
from stress.harness._target import RaceOutcome, TargetOptions, really_raced
from stress.history import Operation

if TYPE_CHECKING:
    from workloads import Space

PROTOCOL = 1
DEFAULT_TIMEOUT = 10.0
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


def child_command(wrapper: Sequence[str], *extra: str) -> list[str]:
    """The argv that starts the agent: wrapper + this interpreter + ``-m stress.agent``."""
    return [*wrapper, sys.executable, "-m", "stress.agent", *extra]


def child_env() -> dict[str, str]:
    """This environment with the project importable in the child (even when not installed)."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = PROJECT_ROOT + (os.pathsep + path if path else "")
    return env


def describe_exit(returncode: int | None) -> str:
    """How a process ended, in words."""
    if returncode is None:
        return "is still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"was killed by signal {-returncode} ({name})"
    return f"exited with status {returncode}"


def _tail(stream: IO[bytes] | None, limit: int = 300) -> str:
    """The last non-empty line the child wrote to stderr (for error messages)."""
    if stream is None:
        return ""
    try:
        stream.seek(0)
        lines = [ln.strip() for ln in stream.read().decode(errors="replace").splitlines()]
    except (OSError, ValueError):
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1][:limit] if lines else ""


class _Lines:
    """Newline-delimited messages from a trio receive stream."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def readline(self) -> bytes | None:
        """The next line without its newline; None at end of stream."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                return line
            chunk = await self.stream.receive_some(1 << 16)
            if not chunk:
                return None
            self.buffer += chunk


class AgentDied(Exception):
    """The child is gone (or was killed); the message says how."""


class AgentTarget:
    """Races run by `python -m stress.agent` in a child process (see the module docstring)."""

    name = "agent"
    clock = "ns"

    def __init__(
        self,
        options: TargetOptions | None = None,
        *,
        timeout: float | None = None,
        gate: str = "barrier",
        regions: Iterable[tuple[int, int]] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        options = options if options is not None else TargetOptions(spec="agent")
        self.wrapper = tuple(options.wrapper)
        self.kind = options.agent
        self._native: str | None = None  # the static native agent's path
        if self.kind == "native":
            try:
                self._native = str(build_native("agent"))
            except NativeUnavailable as exc:
                raise UsageError(f"--agent native: {exc}") from None
        elif self.kind != "python":
            raise UsageError(f"--agent: {self.kind!r} is not one of python, native")
        if timeout is None:
            timeout = options.timeout
        if timeout is None:
            timeout = float(os.environ.get("MMRACE_AGENT_TIMEOUT", DEFAULT_TIMEOUT))
        self.timeout = timeout
        self.gate = gate
        self.env = env if env is not None else child_env()
        self._declared = list(regions)
        self._proc: trio.Process | None = None
        self._lines: _Lines | None = None
        self._stderr: IO[bytes] | None = None
        self._last_ns = 0
        self.dead: str | None = None  # how the child died, once it has
        self.late_problems: list[str] = []  # deaths outside a race, until a race reports them
        info = self._probe()
        self._last_ns = int(info.get("now_ns", 0))
        self.params = options.params if options.params is not None else self._params(info)
        self.describe: dict[str, Any] = {
            "wrapper": shlex.join(self.wrapper),
            "agent": {k: info.get(k) for k in ("uname", "python", "executable")}
            | {"kind": self.kind},
            "timeout": self.timeout,
            "gate": gate,
        }

    def declare_regions(self, regions: Iterable[tuple[int, int]]) -> None:
        """Ranges outside the space the workload may touch (`Workload.regions`); before open."""
        self._declared.extend(regions)

    # --- start-up --------------------------------------------------------------------------

    def _command(self, *extra: str) -> list[str]:
        if self._native is not None:
            return [*self.wrapper, self._native, *extra]
        return child_command(self.wrapper, *extra)

    def _place(self) -> str:
        return f"--wrapper {shlex.join(self.wrapper)}" if self.wrapper else "--target agent"

    def _probe(self) -> dict[str, Any]:
        """Run ``stress.agent --hello`` once, synchronously: is the wrapper usable, and what
        machine does the child see (its params are what the history is judged by)."""
        argv = self._command("--hello")
        try:
            done = subprocess.run(
                argv, capture_output=True, timeout=self.timeout, env=self.env, check=False
            )
        except FileNotFoundError:
            raise UsageError(f"{self._place()}: cannot start {argv[0]!r}: not found") from None
        except PermissionError:
            raise UsageError(f"{self._place()}: cannot start {argv[0]!r}: not executable") from None
        except OSError as exc:
            raise UsageError(f"{self._place()}: cannot start {argv[0]!r}: {exc}") from None
        except subprocess.TimeoutExpired:
            raise UsageError(
                f"{self._place()}: the agent sent no hello within {self.timeout:g} s"
            ) from None
        line = done.stdout.decode(errors="replace").strip().splitlines()
        try:
            info = json.loads(line[-1]) if line else None
        except ValueError:
            info = None
        if not isinstance(info, dict) or info.get("type") != "hello":
            err = done.stderr.decode(errors="replace").strip().splitlines()
            why = err[-1][:300] if err else "no output"
            raise UsageError(
                f"{self._place()}: the agent {describe_exit(done.returncode)} without a hello "
                f"({why})"
            )
        if info.get("protocol") != PROTOCOL:
            raise UsageError(
                f"{self._place()}: agent speaks protocol {info.get('protocol')!r}, "
                f"expected {PROTOCOL}"
            )
        return info

    def _params(self, info: dict[str, Any]) -> mm.Params:
        try:
            return mm.Params.from_json(info["params"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{self._place()}: agent sent bad params: {exc}") from None

    async def open(self, tasks: int, space: Space) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in aclose)
        argv = self._command()
        try:
            self._proc = await trio.lowlevel.open_process(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=self.env,
            )
        except OSError as exc:
            raise UsageError(f"{self._place()}: cannot start {argv[0]!r}: {exc}") from None
        assert self._proc.stdout is not None
        self._lines = _Lines(self._proc.stdout)
        try:
            first = await self._receive()
            if first.get("type") != "hello":
                raise AgentDied(f"sent {first.get('type')!r} instead of hello")
            self.describe["agent"]["pid"] = first.get("pid")
            ready = await self._exchange(
                {
                    "type": "open",
                    "tasks": tasks,
                    "space": {"base": space.base, "size": space.size, "page_size": space.page_size},
                    "regions": [list(r) for r in self._declared],
                    "gate": self.gate,
                }
            )
        except AgentDied as exc:
            raise UsageError(f"{self._place()}: the agent {exc}") from None
        if ready.get("type") != "ready":
            await self._kill()
            raise UsageError(f"{self._place()}: the agent could not start: {ready.get('message')}")
        self.describe["arenas"] = ready.get("arenas", [])

    # --- rounds ----------------------------------------------------------------------------

    async def run_serial(self, round_index: int, ops: Sequence[mm.Op]) -> list[Operation]:
        if self.dead is not None:
            return []  # never sent: nothing happened
        records, problems, _ = await self._round(round_index, "serial", [ops])
        self.late_problems.extend(problems)
        return records

    async def run_race(self, round_index: int, plans: Sequence[Sequence[mm.Op]]) -> RaceOutcome:
        problems, self.late_problems = self.late_problems, []
        if self.dead is not None:  # reported when it died (here or via late_problems)
            return RaceOutcome([], problems, False)
        records, found, content = await self._round(round_index, "race", plans)
        problems.extend(found)
        raced = really_raced(records) and self.dead is None
        return RaceOutcome(records, problems, raced, content)

    async def _round(
        self, round_index: int, mode: str, plans: Sequence[Sequence[mm.Op]]
    ) -> tuple[list[Operation], list[str], dict[str, Any] | None]:
        wire = [[[op.kind, op.addr, op.length, op.prot, op.flags] for op in p] for p in plans]
        request = {"type": "round", "round": round_index, "mode": mode, "plans": wire}
        try:
            answer = await self._exchange(request)
            if answer.get("type") == "error":
                await self._kill()
                raise UsageError(f"{self._place()}: {answer.get('message')}")
            records = self._records(round_index, plans, answer)
            problems = [str(p) for p in answer.get("problems", [])]
            return records, problems, _content(answer.get("content"))
        except AgentDied as exc:
            await self._kill()
            self.dead = f"{exc} (in round {round_index}, {mode})"
            pending = self._last_ns + 1
            records = [
                Operation(task, op, None, pending, None, round_index)
                for task, p in enumerate(plans)
                for op in p
            ]
            return records, [f"agent {self.dead}"], None

    def _records(
        self, round_index: int, plans: Sequence[Sequence[mm.Op]], answer: dict[str, Any]
    ) -> list[Operation]:
        got = answer.get("records")
        if answer.get("type") != "result" or not isinstance(got, list) or len(got) != len(plans):
            raise AgentDied(f"answered {str(answer)[:200]!r}, not a result for {len(plans)} tasks")
        records = []
        last = self._last_ns
        for task, (plan, mine) in enumerate(zip(plans, got, strict=True)):
            if not isinstance(mine, list) or len(mine) != len(plan):
                raise AgentDied(f"answered {len(mine)} records for task {task}'s {len(plan)} calls")
            for op, rec in zip(plan, mine, strict=True):
                try:
                    result, call, ret = (None if v is None else int(v) for v in rec)
                    assert call is not None
                except (TypeError, ValueError, AssertionError):
                    raise AgentDied(f"answered a malformed record {rec!r} (killed)") from None
                records.append(Operation(task, op, result, call, ret, round_index))
                last = max(last, call, ret or 0)
        self._last_ns = last
        return records

    # --- the wire --------------------------------------------------------------------------

    async def _exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its answer (kill the child on any failure)."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        # a dead child cannot read: the read below finds out how it died
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await proc.stdin.send_all(line)
        return await self._receive()

    async def _receive(self) -> dict[str, Any]:
        assert self._lines is not None
        line: bytes | None = b""
        try:
            with trio.move_on_after(self.timeout) as scope:
                line = await self._lines.readline()
        except BaseException:
            await self._kill()  # cancelled (or worse) mid-request: the child's state is unknown
            raise
        if scope.cancelled_caught:
            await self._kill()
            raise AgentDied(f"sent no answer within {self.timeout:g} s (killed)")
        if line is None:
            raise AgentDied(await self._how_it_ended())
        try:
            message = json.loads(line)
        except ValueError:
            await self._kill()
            raise AgentDied(f"sent a line that is not JSON: {line[:120]!r} (killed)") from None
        if not isinstance(message, dict):
            await self._kill()
            raise AgentDied(f"sent {line[:120]!r}, not a JSON object (killed)")
        now = message.get("now_ns")
        if isinstance(now, int):
            self._last_ns = max(self._last_ns, now)
        return message

    async def _how_it_ended(self) -> str:
        proc = self._proc
        assert proc is not None
        with trio.move_on_after(self.timeout):
            await proc.wait()
        if proc.returncode is None:
            await self._kill()
            return "closed its output and was killed"
        text = describe_exit(proc.returncode)
        tail = _tail(self._stderr)
        return f"{text}: {tail}" if tail else text

    async def _kill(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with trio.CancelScope(shield=True):
            proc.kill()
            await proc.wait()

    async def aclose(self) -> None:
        """Say bye (the child unmaps everything and exits); kill it if it does not comply."""
        proc = self._proc
        if proc is None:
            return
        with trio.CancelScope(shield=True):
            if proc.returncode is None and self.dead is None:
                try:
                    answer = await self._exchange({"type": "bye"})
                    if answer.get("type") == "bye":
                        with trio.move_on_after(self.timeout):
                            await proc.wait()
                except AgentDied as exc:
                    self.dead = str(exc)
                    self.late_problems.append(f"agent {exc} (at the end)")
            await self._kill()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    await stream.aclose()
        if self._stderr is not None:
            self._stderr.close()


def _content(value: Any) -> dict[str, Any] | None:
    """The child's content-oracle findings, checked: ``{"checked": n, "changed": [[page, how],
    ...]}``; a malformed value ends the run like any other protocol error."""
    if value is None:
        return None
    ok = isinstance(value, dict) and isinstance(value.get("checked"), int)
    changed = value.get("changed") if ok else None
    ok = ok and isinstance(changed, list)
    ok = ok and all(
        isinstance(c, list) and len(c) == 2 and isinstance(c[0], int) and isinstance(c[1], str)
        for c in changed or ()
    )
    if not ok:
        raise AgentDied(f"sent a malformed content report {str(value)[:120]!r} (killed)")
    return {"checked": value["checked"], "changed": [list(c) for c in changed or ()]}


def make_target(options: TargetOptions) -> AgentTarget:
    """Registry factory for ``--target agent``."""
    return AgentTarget(options)
