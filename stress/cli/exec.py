"""`mmrace exec SCRIPT`: run a sequential operation script on the model, the kernel, or both.

One line per operation with its result. With both targets each line shows both results and
the command exits 1 on any divergence: different results, a kernel placement the model does
not allow, or different pages in the arena afterwards. For a non-fixed mmap the model follows
the kernel's placement (when allowed), so later lines compare like for like. See docs/exec.md.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import attrs

import mm
import mm.kernel
from stress.cli._script import FAR_BASE, Script, ScriptOp, load_script, parse_value
from stress.errors import UsageError, counted
from stress.verdict import Verdict

HELP = "run a sequential operation script against one or two targets"
TARGETS = ("model", "kernel")
CLUSTER_GAP = 1 << 30  # fixed ranges closer than this share one arena


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("script", help="operation script (see docs/exec.md)")
    parser.add_argument(
        "--target",
        action="append",
        choices=TARGETS,
        help="model or kernel; give it twice to compare both (default: model)",
    )
    priv = parser.add_mutually_exclusive_group()
    priv.add_argument(
        "--privileged",
        dest="privileged",
        action="store_const",
        const=True,
        help="as a caller with CAP_SYS_RAWIO (default: as this process is)",
    )
    priv.add_argument(
        "--unprivileged",
        dest="privileged",
        action="store_const",
        const=False,
        help="as a caller without CAP_SYS_RAWIO (the kernel target drops it in its own thread)",
    )
    parser.add_argument(
        "--base", default=hex(FAR_BASE), help="the value of B in the script (default: %(default)s)"
    )
    parser.add_argument(
        "--model-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a model parameter (e.g. lsm_mmap_min_addr=0x20000)",
    )


# --- targets ---------------------------------------------------------------------------------


class ModelTarget:
    """The sequential spec, one state; can follow another target's non-fixed placement."""

    name = "model"

    def __init__(self, params: mm.Params) -> None:
        self.params = params
        self.state = mm.State.empty()

    def apply(self, op: mm.Op) -> int:
        result, self.state = mm.apply(self.state, self.params, op)
        return result


class KernelTarget:
    """The running kernel, fenced into arenas that cover the script's fixed ranges.

    Unprivileged while this process holds CAP_SYS_RAWIO: every call runs in one worker thread
    that dropped the capability (capabilities are per thread; nothing global changes).
    """

    name = "kernel"

    def __init__(self, script: Script, privileged: bool, stack: ExitStack) -> None:
        from mm import kernel

        self.kernel = kernel
        self.arenas = [stack.enter_context(a) for a in _reserve_arenas(script, kernel)]
        self.space = stack.enter_context(kernel.KernelSpace(*self.arenas))
        self.worker: ThreadPoolExecutor | None = None
        if not privileged and mm.kernel.has_cap_sys_rawio():
            self.worker = stack.enter_context(
                ThreadPoolExecutor(1, initializer=kernel.drop_cap_sys_rawio)
            )
            if self.worker.submit(kernel.thread_has_cap_sys_rawio).result():
                raise UsageError("--unprivileged: could not drop CAP_SYS_RAWIO")
        elif privileged and not mm.kernel.has_cap_sys_rawio():
            raise UsageError("--privileged: this process lacks CAP_SYS_RAWIO")

    def apply(self, op: mm.Op) -> int:
        if self.worker is not None:
            return self.worker.submit(self.space.apply, op).result()
        return self.space.apply(op)

    def pages(self, state: mm.State) -> tuple[Any, Any]:
        """(kernel pages, model pages) inside the arenas."""
        model = [r for a in self.arenas for r in self.kernel.model_regions(state, a.base, a.end)]
        return self.space.snapshot(), self.kernel.merge_regions(model)


def _reserve_arenas(script: Script, kernel: Any) -> list[Any]:
    """One arena per cluster of the script's fixed page ranges; UsageError naming the line."""
    ranges = []
    for item in script.ops:
        rng = kernel.guarded_range(item.op, script.page_size)
        if rng is not None:
            ranges.append((rng[0], rng[1], item))
    ranges.sort(key=lambda r: (r[0], r[1]))
    clusters: list[list[Any]] = []
    for lo, hi, item in ranges:
        low_then_far = clusters and clusters[-1][1] <= kernel.LOW_LIMIT <= lo
        if clusters and lo <= clusters[-1][1] + CLUSTER_GAP and not low_then_far:
            clusters[-1][1] = max(clusters[-1][1], hi)
        else:
            clusters.append([lo, hi, item])
    arenas = []
    for lo, hi, item in clusters:
        try:
            arenas.append(kernel.Arena.reserve(hi - lo, base=lo))
        except kernel.ArenaError as exc:
            for arena in arenas:
                arena.release()
            raise UsageError(
                f"{script.source}:{item.line}: no arena for this range: {exc}"
            ) from None
    return arenas


# --- running ---------------------------------------------------------------------------------


@attrs.frozen
class Agreement:
    agree: bool
    note: str = ""


def compare(model: ModelTarget, before: mm.State, op: mm.Op, mine: int, theirs: int) -> Agreement:
    """Do the model's result `mine` and the kernel's `theirs` agree? Advances the model to
    follow an allowed non-fixed placement."""
    nonfixed = mm.is_nonfixed(op)
    if nonfixed and mine >= 0 and theirs >= 0:
        after = mm.step_observed(before, model.params, op, theirs)
        if after is None:
            return Agreement(False, "kernel placement not allowed by the model")
        model.state = after
        return Agreement(True, "" if mine == theirs else "both allowed placements")
    return Agreement(mine == theirs)


_BOOLS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _params(args: argparse.Namespace) -> mm.Params:
    params = mm.kernel.host_params(privileged=args.privileged)
    fields = {f.name: f for f in attrs.fields(mm.Params)}
    overrides: dict[str, tuple[str, object]] = {}
    for item in args.model_param:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in fields:
            raise UsageError(
                f"--model-param {item}: expected KEY=VALUE with KEY in {', '.join(fields)}"
            )
        word = value.strip().lower()
        parsed: object = _BOOLS.get(word, value) if key == "privileged" else value
        if key != "privileged":
            try:
                parsed = int(value, 0)
            except ValueError:
                raise UsageError(f"--model-param {item}: {value!r} is not a number") from None
        overrides[key] = (item, parsed)
    try:  # all at once: page_size=16384 may need its task_size=... too
        return mm.Params.validated(
            **{**params.to_json(), **{k: v for k, (_, v) in overrides.items()}}
        )
    except ValueError as exc:
        key = str(exc).partition(":")[0]
        where = f"--model-param {overrides[key][0]}" if key in overrides else "--model-param"
        raise UsageError(f"{where}: {exc}") from None


def _line(item: ScriptOp, width: int, cells: list[str]) -> str:
    return f"{item.line:>4}  {item.op!s:<{width}}  " + "  ".join(cells)


def run(args: argparse.Namespace) -> int:
    targets = args.target or ["model"]
    for name in targets:
        if targets.count(name) > 1:
            raise UsageError(
                f"--target {name}: given {targets.count(name)} times (one model, one kernel: "
                "give both to compare them)"
            )
    try:
        base = parse_value(args.base, base=FAR_BASE)
    except ValueError as exc:
        raise UsageError(f"--base: {exc}") from None
    script = load_script(args.script, base=base)
    params = _params(args)
    if args.privileged is None:
        args.privileged = mm.kernel.has_cap_sys_rawio()
    if "kernel" in targets and not sys.platform.startswith("linux"):
        raise UsageError(f"--target kernel: needs Linux (this system is {sys.platform})")
    with ExitStack() as stack:
        model = ModelTarget(params) if "model" in targets else None
        kernel = KernelTarget(script, args.privileged, stack) if "kernel" in targets else None
        return _execute(script, model, kernel)


def _execute(script: Script, model: ModelTarget | None, kernel: KernelTarget | None) -> int:
    divergences = 0
    width = max(len(str(item.op)) for item in script.ops)
    for item in script.ops:
        op = item.op
        if model is not None and kernel is not None:
            before = model.state
            mine, theirs = model.apply(op), kernel.apply(op)
            verdict = compare(model, before, op, mine, theirs)
            cells = [
                f"model={mm.format_result(op.kind, mine)}",
                f"kernel={mm.format_result(op.kind, theirs)}",
            ]
            problems = [] if verdict.agree else [verdict.note or "results differ"]
            have, want = kernel.pages(model.state)
            if have != want:
                problems.append(
                    "pages differ: kernel "
                    + (", ".join(map(str, have)) or "(none)")
                    + "; model "
                    + (", ".join(map(str, want)) or "(none)")
                )
            if problems:
                divergences += 1
                cells.append("DIVERGES: " + "; ".join(problems))
            elif verdict.note:
                cells.append(f"ok ({verdict.note})")
            print(_line(item, width, cells))
        else:
            target: ModelTarget | KernelTarget | None = model if model is not None else kernel
            assert target is not None
            print(_line(item, width, [mm.format_result(op.kind, target.apply(op))]))
    if model is not None and kernel is not None:
        print(f"{counted(len(script.ops), 'operation')}, {counted(divergences, 'divergence')}")
    return (Verdict.VIOLATION if divergences else Verdict.OK).exit_code
