"""The real targets' flags, shared by `run`, `sweep` and `conformance`: the kernel target's
--engine, the agent target's --agent, --wrapper and two deadlines (each answer, start-up)."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from stress.errors import UsageError


def add_agent_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wrapper", default=None, help="agent target: command prefix")
    parser.add_argument(
        "--engine",
        default=None,
        choices=("native", "python"),
        help="kernel target: race with the C racer (native, default; built on first use, the "
        "Python engine when no C compiler is found) or with Python threads",
    )
    parser.add_argument(
        "--agent",
        default=None,
        choices=("python", "native"),
        help="agent target: the child is `python -m stress.agent` (python, default) or the "
        "static C agent (native, built on first use; for runtimes without Python)",
    )
    parser.add_argument(
        "--agent-timeout",
        default=None,
        help="agent target: seconds to wait for each answer (default $MMRACE_AGENT_TIMEOUT or 10)",
    )
    parser.add_argument(
        "--agent-startup-timeout",
        default=None,
        help="agent target: seconds the agent may take to start "
        "(default $MMRACE_AGENT_STARTUP_TIMEOUT or 60)",
    )


def parse_wrapper(text: str | None, target: str) -> tuple[str, ...]:
    """--wrapper split like a shell would; a UsageError for an empty or unusable one."""
    if text is None:
        return ()
    try:
        wrapper = tuple(shlex.split(text))
    except ValueError as exc:
        raise UsageError(f"--wrapper: {exc}") from None
    if not wrapper:
        raise UsageError("--wrapper: empty command")
    if target != "agent":
        raise UsageError("--wrapper: only the agent target runs a command")
    return wrapper


def seconds(flag: str, text: str | None, target: str, what: str) -> float | None:
    """A deadline flag: None when absent, else a number of seconds >= 0.001 for the agent."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{flag}: {text!r} is not a float") from None
    if not 0.001 <= value < float("inf"):
        raise UsageError(f"{flag}: must be at least 0.001, got {text}")
    if target != "agent":
        raise UsageError(f"{flag}: only the agent target {what}")
    return value


def agent_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `TargetOptions` fields these flags give."""
    engine = getattr(args, "engine", None)
    if engine is not None and args.target != "kernel":
        raise UsageError("--engine: only the kernel target has engines (native or python)")
    agent = getattr(args, "agent", None)
    if agent is not None and args.target != "agent":
        raise UsageError("--agent: only with --target agent")
    return {
        "engine": engine or "native",
        "agent": agent or "python",
        "wrapper": parse_wrapper(args.wrapper, args.target),
        "timeout": seconds("--agent-timeout", args.agent_timeout, args.target, "waits for answers"),
        "startup_timeout": seconds(
            "--agent-startup-timeout", args.agent_startup_timeout, args.target, "starts a process"
        ),
    }
