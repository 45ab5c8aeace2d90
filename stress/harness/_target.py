"""The Target protocol: what the harness needs from anything tasks can race against.

A target runs rounds of operations and hands back what happened as `stress.history.Operation`
records, the one record of a call (the op object is shared with the plan; stamps are ints). The
harness streams them to the history; it never looks inside a target.

Clocks: `clock == "ns"` means `call`/`ret` are `time.monotonic_ns()` values; `"steps"` means a
virtual step counter (the controlled scheduler), which makes replay exact. Either way, within
one round every stamp is comparable with every other, and stamps grow from round to round.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

import mm
from stress.history import Operation

if TYPE_CHECKING:  # workloads imports mm only; the harness only needs the Space value's fields
    from workloads import Space


@attrs.frozen
class RaceOutcome:
    """What one race did.

    `problems`: anything that makes the round unjudgeable (interference from outside,
    a crashed or hung agent, a call that never returned); the run's verdict is then never OK.
    `overlapped`: did the racing calls really overlap in time (see `really_raced`).
    `content`: what a content oracle saw (kernel and agent targets; None for the others): setup
    mappings with PROT_WRITE carry sentinel bytes, read back after the race,
    ``{"checked": pages read back, "changed": [[page, "zeroed" | "replaced" | "unmapped"], ...]}``.
    The harness only reports it (in the round record); grading judges it.
    `pruned`: the exhaustive search cut this schedule short at a state it had already explored
    (`stress.harness._explore`): the runner records nothing of the round.
    """

    records: list[Operation]
    problems: list[str] = attrs.Factory(list)
    overlapped: bool = False
    content: dict[str, Any] | None = None
    pruned: bool = False


@attrs.frozen
class BatchRound:
    """One round of `Target.run_rounds`: its race, and its tail's records (the cleanup and
    footprint-check ops given, in order), or None when the tail did not run (the batch stopped
    after this race: the runner then runs undo, cleanup and check itself, as for any round)."""

    race: RaceOutcome
    tail: list[Operation] | None


# A round handed to `Target.run_rounds`: the race's plans, then the serial tail's ops.
RoundOps = tuple[Sequence[Sequence[mm.Op]], Sequence[mm.Op]]


@attrs.frozen
class TargetOptions:
    """Everything the command line may say about a target; each target uses what it needs.

    `spec` is the --target text as given (for plug-ins: "package.module:factory").
    `scheduler`: "random" | "pct" | "exhaustive" (controlled: the model target and plug-ins),
    "trio" (the model under trio's own scheduling), "free" (a plug-in on free OS threads or trio
    tasks, not controlled); `depth`: PCT bug depth d.
    `preemptions`, `max_schedules`: the exhaustive search's preemption bound K and its cap on
    schedules per round plan.
    `granularity`: a sync plug-in's preemption points, "line" or "opcode".
    `wrapper`: a command prefix for the agent (e.g. ("taskset", "-c", "0")).
    `variant`: a bug variant name (`mm.variants`), None for the correct core.
    `params`: the machine the model mirrors (None: the target's own choice).
    `noise`: inject seeded scheduling noise at yield points (model-threads).
    `schedule`: recorded decisions to replay instead of choosing (controlled scheduler).
    `timeout`: seconds a target may wait for one answer (the agent's per-request deadline, a
    plug-in call's deadline, the kernel target's deadline for a race); None: the target's default.
    `engine`: the kernel target's racing threads, "native" (the C racer, `_native`; the Python
    engine with a note when it cannot be built) or "python" (`stress.agent.WorkerPool`).
    `agent`: the agent target's child, "python" (``python -m stress.agent``) or "native" (the
    static C agent, `native/agent.c`).
    `startup_timeout`: seconds the agent may take to start and say hello (slow emulators);
    None: $MMRACE_AGENT_STARTUP_TIMEOUT, else 60.
    `batch`: the kernel target's native engine: rounds per C call at most (`run_rounds`);
    1 turns batching off; None: $MMRACE_BATCH, else the target's default.
    """

    spec: str = "model"
    seed: int = 0
    scheduler: str = "random"
    depth: int = 3
    wrapper: tuple[str, ...] = ()
    variant: str | None = None
    params: mm.Params | None = None
    noise: bool = True
    schedule: tuple[int, ...] | None = None
    timeout: float | None = None
    startup_timeout: float | None = None
    preemptions: int = 2
    max_schedules: int = 10_000
    granularity: str = "line"
    engine: str = "native"
    agent: str = "python"
    batch: int | None = None


@runtime_checkable
class Target(Protocol):
    """Anything tasks race against. Lifecycle: `open`, rounds, `aclose` (always called).

    - `name`: "model", "model-threads", "kernel", "agent", "plugin:pkg.mod:factory".
    - `describe`: JSON-able facts for the history header (arena, wrapper, variant, scheduler).
    - `params`: the `mm.Params` the checker must judge this target's history with.
    - `clock`: "ns" or "steps" (see the module docstring).
    - `open(tasks, space)`: start workers, reserve and verify the arena `space`, spawn an agent.
    - `run_serial(round, ops)`: run `ops` one after another as task 0 (setup and cleanup).
    - `run_race(round, plans)`: task i runs `plans[i]` in order, all tasks concurrently.

    Optional, looked up with `getattr` by the runner:
    - `declare_regions(regions)`: called before `open` with `Workload.regions(tasks, space)`,
      every [start, end) range a round may touch (the target verifies ranges outside the
      space free, as the kernel and agent targets do).
    - `dead`: a string once the target can run no more rounds (how it died); the runner stops.
    - `late_problems`: a list of problems found outside a race (a death during cleanup or
      `aclose`); the runner reports what is left in it after the rounds and after `aclose`.
    - `set_deadline(when)`: the monotonic instant the run's time budget ends (a target whose
      calls can hang ends a stuck round there).
    - `explorer`: not None under the exhaustive scheduler: the search the runner drives
      (`stress.harness._explore.Explorer`: `begin`, `end`, `plan_round`, `finished`).
    - `last_choices`: the controlled scheduler's decisions in the last race (clock "steps").
    - `run_rounds(first_round, rounds)` with `batch_limit` (rounds per call at most; batching
      is used only when it is above 1): run several rounds at once, each given as (race plans,
      tail ops: the round's undo-free cleanup and footprint check), round indices from
      `first_round`; returns a `BatchRound` per round run, a prefix of `rounds` ([] when the
      first does not qualify: the runner then runs it the usual way). The runner uses it only
      without an explorer and for rounds without setup, and records each round exactly as if
      it had run alone. A target stops a batch after a race whose records need the runner
      before the next round (a mapping placed elsewhere: tail None) and after a tail whose
      footprint-check probe was answered elsewhere.
    """

    name: str
    describe: dict[str, Any]
    params: mm.Params
    clock: str

    async def open(self, tasks: int, space: Space) -> None: ...

    async def run_serial(self, round_index: int, ops: Sequence[mm.Op]) -> list[Operation]: ...

    async def run_race(self, round_index: int, plans: Sequence[Sequence[mm.Op]]) -> RaceOutcome: ...

    async def aclose(self) -> None: ...


def contested(records: Sequence[Operation], page: int) -> bool:
    """Did a real contest happen: were two racing calls that compete in flight at once?

    Definition: a call *won* when it returned a success (an address or 0). The round is
    contested when some call that won was in flight at the same instant as a call of another
    task whose page range overlaps or touches its own (a touching neighbour counts: adjacent
    mappings merge and split in the kernel). In flight: from invocation to response, ends
    included (a pending call never ends). When no racing call won, any two such calls count.
    Ranges are the calls' requested [addr, addr + length rounded up to pages).
    """
    if len(records) < 2:
        return False
    inf = float("inf")
    ranges: dict[int, tuple[int, int]] = {}  # by op identity: tasks share their op values

    def pages(op: mm.Op) -> tuple[int, int]:
        got = ranges.get(id(op))
        if got is None:
            got = ranges[id(op)] = mm.page_range(op, page)
        return got

    winners = [r for r in records if r.result is not None and r.result >= 0] or records
    for w in winners:
        task, call = w.task, w.call
        end = inf if w.ret is None else w.ret
        lo, hi = pages(w.op)
        for o in records:
            if o.task == task or o.call > end or (o.ret is not None and o.ret < call):
                continue
            olo, ohi = pages(o.op)
            if olo <= hi and lo <= ohi:
                return True
    return False


def really_raced(records: Sequence[Operation]) -> bool:
    """Did the racing tasks really overlap in time?

    Definition: take each task's span (its first call's invocation to its last call's
    response; a pending call never ends). The round really raced when at least two tasks ran
    and all spans share a common instant: the latest span start is before the earliest span
    end. With one op per task this is "every race call was in flight at the same moment".
    """
    starts: dict[int, int] = {}
    ends: dict[int, float] = {}
    for rec in records:
        if rec.task not in starts or rec.call < starts[rec.task]:
            starts[rec.task] = rec.call
        end: float = float("inf") if rec.ret is None else rec.ret
        if rec.task not in ends or end > ends[rec.task]:
            ends[rec.task] = end
    if len(starts) < 2:
        return False
    return max(starts.values()) < min(ends.values())
