"""Mutation testing of mmrace itself: every bug variant must be killed, no correct target flagged.

A *cell* is one run: (variant or the correct core, workload, strategy). Strategies: `random` and
`pct` (the controlled scheduler on the `model` target), `noise` (OS threads with seeded yield
noise on `model-threads`) and `kernel` (the real kernel: false-alarm check only). The lock-free
plug-ins of `stress.selftest.lockfree` (sync and async, no yield point) are raced like variants
under the controlled scheduler (random, pct) and must be caught; their locked versions must not
be flagged. A cell runs
rounds through the harness (`stress.harness.execute`) and stops at the first detection: a round
graded FORBIDDEN or UNSPECIFIED in the strict reading, or a round the linearizability checker
finds no atomic order for (`stress.driver.RoundJudge` judges each round on its own as it ends,
so the first detecting round is known). `run_all` shares one time budget among the cells.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

import mm
import mm.variants
import workloads
from stress.driver import RoundJudge, save_run_json
from stress.harness import (
    RoundLog,
    RunConfig,
    RunStats,
    StopFlag,
    TargetOptions,
    execute,
    make_target,
)
from stress.selftest import _workloads as extra
from stress.verdict import Verdict

STRATEGIES = {
    "random": ("model", "random"),
    "pct": ("model", "pct"),
    "noise": ("model-threads", "random"),
}
KERNEL = "kernel"

PLUGINS: dict[str, str] = {
    "lockfree-sync": "stress.selftest.lockfree:nolock",
    "lockfree-async": "stress.selftest.lockfree:nolock_async",
}
"""Plug-ins with a check-then-insert race and no yield point (stress/selftest/lockfree.py):
the controlled scheduler must catch them by preempting their own code."""
CORRECT_PLUGINS: dict[str, str] = {
    "locked-sync": "stress.selftest.lockfree:locked",
    "locked-async": "stress.selftest.lockfree:locked_async",
}
"""The same plug-ins with a lock: never flagged."""
PLUGIN_STRATEGIES = ("random", "pct")
PLUGIN_WORKLOAD = "same-page"

EXPOSES: dict[str, tuple[str, ...]] = {
    "check-then-act": ("same-page", "same-range", "chain"),
    "start-only-overlap": ("partial-overlap", "chain"),
    "flag-ignored": ("same-page", "hint-vs-fixed"),
    "zero-einval": ("zero-page",),
    "zero-fixed-elsewhere": ("zero-page",),
    "adjacent-overlap": ("adjacent", "partial-overlap"),
    "noreplace-clobbers": ("same-page", "churn"),
    "one-min-addr": ("zero-page",),
    "overlap-before-checks": ("low-overlap",),
    "mprotect-all-or-nothing": ("mprotect-hole",),
    "rollback-window": ("same-page", "same-range"),
    "munmap-nonatomic": ("split-munmap", "mixed"),
    "two-phase-protect": ("mixed",),
    "stride-skip-overlap": ("boundary",),
    "wrong-flag-value": ("same-page", "hint-vs-fixed"),
    "enomem-below-min": ("top", "zero-page"),
    "lost-unmap": ("mixed", "split-munmap"),
}
"""The workloads that can expose each variant (and why: see docs/verdicts.md)."""


@attrs.frozen
class CellSpec:
    """What to run: `variant` None is the correct core (or the kernel, strategy "kernel")."""

    variant: str | None
    workload: str
    strategy: str
    plugin: str | None = None  # a key of PLUGINS or CORRECT_PLUGINS: that plug-in is raced

    @property
    def target(self) -> str:
        if self.plugin is not None:
            return {**PLUGINS, **CORRECT_PLUGINS}[self.plugin]
        return KERNEL if self.strategy == KERNEL else STRATEGIES[self.strategy][0]

    @property
    def scheduler(self) -> str:
        return "random" if self.strategy == KERNEL else STRATEGIES[self.strategy][1]

    @property
    def subject(self) -> str:
        """The variant's name, "correct" (the model core), "kernel" or the plug-in's name."""
        if self.plugin is not None:
            return f"plugin-{self.plugin}"
        return self.variant or (KERNEL if self.strategy == KERNEL else "correct")

    @property
    def slug(self) -> str:
        return f"{self.subject}/{self.workload}-{self.strategy}"


@attrs.frozen
class CellResult:
    """What a cell did: rounds run, the round count at the first detection (None: none), the
    seconds to it (or in all), what detected it, rounds that could not be judged, and how to
    replay it."""

    spec: CellSpec
    rounds: int
    detected_at: int | None
    seconds: float
    how: str | None
    unknown_rounds: int
    replay: str
    error: str | None = None

    @property
    def detected(self) -> bool:
        return self.detected_at is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.spec.subject,
            "workload": self.spec.workload,
            "strategy": self.spec.strategy,
            "target": self.spec.target,
            "rounds": self.rounds,
            "detected_at": self.detected_at,
            "seconds": round(self.seconds, 4),
            "how": self.how,
            "unknown_rounds": self.unknown_rounds,
            "replay": self.replay,
            "error": self.error,
        }


def model_params(workload: str) -> mm.Params:
    """The machine the model cells mirror: the reference machine without CAP_SYS_RAWIO (so the
    page-0 and vm.mmap_min_addr rules are live), plus what a workload needs."""
    base = mm.Params.reference(privileged=False)
    return attrs.evolve(base, **extra.PARAMS.get(workload, {}))


def run_cell(
    spec: CellSpec,
    *,
    seconds: float,
    max_rounds: int,
    tasks: int,
    seed: int,
    out: Path,
    check_timeout: float = 2.0,
) -> CellResult:
    """Run one cell until its first detection, `max_rounds` rounds or `seconds`."""
    cell_dir = out / spec.slug
    workload, ref = extra.load(spec.workload, out / "workloads")
    params = None if spec.strategy == KERNEL else model_params(spec.workload)
    options = TargetOptions(
        spec=spec.target, seed=seed, scheduler=spec.scheduler, variant=spec.variant, params=params
    )
    config = RunConfig(workload, ref, options, tasks, max_rounds, seconds, cell_dir)
    started = time.monotonic()
    try:
        target = make_target(options)
        space = workloads.Space.from_params(target.params)
        config = attrs.evolve(config, space=space)
        detector = RoundJudge(workload, seed, target.params, space, check_timeout)
        stop = StopFlag()
        detected_after: list[float] = []

        def on_round(stats: RunStats, log: RoundLog) -> None:
            if not detected_after and detector(stats, log):
                detected_after.append(time.monotonic() - started)
                stop.request("detected")

        stats = trio.run(functools.partial(execute, config, target, stop=stop, on_round=on_round))
    except Exception as exc:  # a cell that cannot run is reported, never passed
        reason = f"{type(leaf(exc)).__name__}: {leaf(exc)}"
        return CellResult(spec, 0, None, time.monotonic() - started, None, 0, "", reason)
    found_at = None if detector.found_round is None else detector.found_round + 1
    error = None
    if stats.interrupted not in (None, "detected"):  # e.g. the target failed mid-run
        last = stats.problems[-1] if stats.problems else ""
        error = f"run ended early: {stats.interrupted}: {last}"
    elif stats.rounds == 0:
        error = "no round ran within the cell's time"
    save_run_json(attrs.evolve(config, rounds=found_at or stats.rounds, time_budget=None))
    return CellResult(
        spec,
        stats.rounds,
        found_at,
        detected_after[0] if detected_after else stats.seconds,
        detector.found,
        detector.unknown_rounds,
        replay_command(spec, cell_dir, found_at or stats.rounds, tasks, seed),
        error,
    )


def leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def replay_command(spec: CellSpec, cell_dir: Path, rounds: int, tasks: int, seed: int) -> str:
    """How to see it again: `mmrace replay DIR` where the schedule is recorded (exact), else the
    `mmrace run` line (same seed; threads and the kernel interleave differently each time)."""
    if spec.target == "model" or spec.plugin is not None:  # controlled: a recorded schedule
        return f"mmrace replay {cell_dir}"
    variant = f" --variant {spec.variant}" if spec.variant else ""
    return (
        f"mmrace run {spec.workload} --target {spec.target}{variant} --tasks {tasks} "
        f"--seed {seed} --rounds {rounds}"
    )


def plan_cells(
    variants: Sequence[str],
    *,
    false_alarm: bool = True,
    kernel: bool = True,
    plugins: bool = True,
) -> tuple[list[CellSpec], list[CellSpec]]:
    """(variant cells, false-alarm cells): each variant on its exposing workloads under every
    strategy, and the lock-free plug-ins under the controlled scheduler's; the correct core on
    every workload they use and the catalog, the locked plug-ins; the kernel on the catalog and
    the extra workloads it can run."""
    killers = [CellSpec(v, w, s) for v in variants for w in EXPOSES[v] for s in STRATEGIES]
    if plugins:
        killers += [
            CellSpec(None, PLUGIN_WORKLOAD, s, plugin=p) for p in PLUGINS for s in PLUGIN_STRATEGIES
        ]
    checks: list[CellSpec] = []
    if false_alarm:
        names = [*workloads.catalog(), *extra.TEXTS]
        checks += [CellSpec(None, w, s) for w in names for s in STRATEGIES]
        if plugins:
            checks += [
                CellSpec(None, PLUGIN_WORKLOAD, s, plugin=p)
                for p in CORRECT_PLUGINS
                for s in PLUGIN_STRATEGIES
            ]
        if kernel:
            checks += [CellSpec(None, w, KERNEL) for w in names if w not in extra.MODEL_ONLY]
    return killers, checks


@attrs.frozen
class MutantsReport:
    """All the cells, and the verdict: every variant killed and no false alarm."""

    variants: tuple[str, ...]
    cells: tuple[CellResult, ...]
    budget: float
    seconds: float
    plugins: tuple[str, ...] = ()  # the PLUGINS raced (each must be caught like a variant)

    def killers(self, variant: str) -> list[CellResult]:
        """The cells of a variant, or of a plug-in (a key of PLUGINS)."""
        if variant in PLUGINS:
            return [c for c in self.cells if c.spec.plugin == variant]
        return [c for c in self.cells if c.spec.variant == variant and c.spec.plugin is None]

    def best(self, variant: str) -> CellResult | None:
        """The cell that killed `variant` (or plug-in) fastest (None: it survived)."""
        found = [c for c in self.killers(variant) if c.detected]
        return min(found, key=lambda c: c.seconds) if found else None

    @property
    def checks(self) -> list[CellResult]:
        return [c for c in self.cells if c.spec.variant is None and c.spec.plugin not in PLUGINS]

    @property
    def false_alarms(self) -> list[CellResult]:
        return [c for c in self.checks if c.detected]

    @property
    def errors(self) -> list[CellResult]:
        return [c for c in self.cells if c.error]

    @property
    def survivors(self) -> list[str]:
        return [v for v in (*self.variants, *self.plugins) if self.best(v) is None]

    @property
    def plugin_median_seconds(self) -> float | None:
        """Median seconds to catch a lock-free plug-in (over its cells that caught it)."""
        times = sorted(c.seconds for p in self.plugins for c in self.killers(p) if c.detected)
        if not times:
            return None
        mid = len(times) // 2
        return times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2

    @property
    def median_seconds(self) -> float | None:
        times = sorted(b.seconds for v in self.variants if (b := self.best(v)) is not None)
        if not times:
            return None
        mid = len(times) // 2
        return times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2

    @property
    def verdict(self) -> Verdict:
        """VIOLATION when a variant survived or a correct target was flagged; UNKNOWN when a
        cell could not run (nothing was shown either way); else OK."""
        if self.survivors or self.false_alarms:
            return Verdict.VIOLATION
        return Verdict.UNKNOWN if self.errors else Verdict.OK

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK

    def results(self) -> list[dict[str, Any]]:
        """Per (variant, strategy): rounds and the first detection of its best workload (the
        input of the detection plot)."""
        out = []
        for v in (*self.variants, *self.plugins):
            for s in STRATEGIES:
                mine = [c for c in self.killers(v) if c.spec.strategy == s]
                if not mine:
                    continue
                hit = [c for c in mine if c.detected]
                c = min(hit, key=lambda c: c.detected_at or 0) if hit else mine[0]
                out.append(
                    {
                        "variant": v,
                        "strategy": s,
                        "rounds": c.rounds,
                        "detected_at": c.detected_at,
                        "workload": c.spec.workload,
                        "seconds": round(c.seconds, 4),
                    }
                )
        return out

    def to_json(self) -> dict[str, Any]:
        variants = []
        for v in self.variants:
            b = self.best(v)
            variants.append(
                {
                    "variant": v,
                    "summary": mm.variants.describe(v),
                    "killed": b is not None,
                    "best": b.to_json() if b else None,
                }
            )
        return {
            "mmrace_mutants": 1,
            "ok": self.ok,
            "budget": self.budget,
            "seconds": round(self.seconds, 3),
            "median_seconds_to_kill": self.median_seconds,
            "variants": variants,
            "plugins": [
                {
                    "plugin": p,
                    "target": PLUGINS[p],
                    "killed": (b := self.best(p)) is not None,
                    "best": b.to_json() if b else None,
                    "cells": [c.to_json() for c in self.killers(p)],
                }
                for p in self.plugins
            ],
            "median_seconds_to_catch_plugins": self.plugin_median_seconds,
            "results": self.results(),
            "false_alarms": [c.to_json() for c in self.false_alarms],
            "cells": [c.to_json() for c in self.cells],
        }


def run_all(
    variants: Sequence[str],
    *,
    budget: float,
    out: Path,
    tasks: int = 4,
    seed: int = 1,
    max_rounds: int = 2000,
    false_alarm: bool = True,
    kernel: bool = True,
    plugins: bool = True,
    on_cell: Callable[[CellResult], None] | None = None,
) -> MutantsReport:
    """Run the variant cells (60% of the budget, their unused time carried over), then the
    false-alarm cells (the rest), each cell getting an equal share of what is left."""
    started = time.monotonic()
    killers, checks = plan_cells(variants, false_alarm=false_alarm, kernel=kernel, plugins=plugins)
    results: list[CellResult] = []
    for group, share in ((killers, 0.6 if checks else 1.0), (checks, 1.0)):
        end = started + budget * share
        for i, spec in enumerate(group):
            left = max(end - time.monotonic(), 0.0)
            seconds = max(left / (len(group) - i), 0.05)
            result = run_cell(
                spec, seconds=seconds, max_rounds=max_rounds, tasks=tasks, seed=seed, out=out
            )
            results.append(result)
            if on_cell is not None:
                on_cell(result)
    chosen = tuple(PLUGINS) if plugins else ()
    return MutantsReport(
        tuple(variants), tuple(results), budget, time.monotonic() - started, chosen
    )
