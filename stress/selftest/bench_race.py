"""Race-history benchmarks: read and check a 1,000,000-operation race history; find a forged win.

The history is what a long run of the same-range race produces: rounds of ``tasks`` concurrent
MAP_FIXED_NOREPLACE probes of one range (a random task among those invoked before any returned
wins, the others get EEXIST; call/return times overlap and are jittered), each round followed
by task 0's munmap of the range. It is streamed to a temporary file. Peak memory is measured
in a child process (its ``ru_maxrss``, and its children's, so the figure covers only the read
and the check).
Registered as the ``race`` benchmark of `stress.selftest.bench_checker`.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mm
from stress.history import Header, HistoryWriter, Operation
from stress.selftest.bench_checker import Figure, register

ARENA = 0x100000000000
OPERATIONS = 1_000_000
_TIMES = ("read", "check", "read_cpu", "check_cpu")
TASKS = 64


def write_race_history(
    path: Path,
    operations: int = OPERATIONS,
    tasks: int = TASKS,
    *,
    seed: int = 0,
    forge_round: int | None = None,
) -> int:
    """Write a race history of about ``operations`` operations; returns the number of rounds.

    With ``forge_round``, one loser of that round is recorded as a second winner.
    """
    rng = random.Random(seed)
    probe = mm.Op.mmap(ARENA, 2 * 4096, mm.PROT_READ | mm.PROT_WRITE, mm.NR)
    unmap = mm.Op.munmap(ARENA, 2 * 4096)
    rounds = max(1, operations // (tasks + 1))
    header = Header.create(
        "synthetic",
        workload="same-range",
        seed=seed,
        params=mm.Params.reference().to_json(),
        privileged=True,
        arena={"base": ARENA, "size": 1 << 30},
        extra={"generator": "stress.selftest.bench_race"},
    )
    t = 1_000_000_000
    with HistoryWriter(path, header, flush_every=65536) as writer:
        for r in range(rounds):
            calls = [t + rng.randrange(0, 20_000) for _ in range(tasks)]
            rets = [c + rng.randrange(2_000, 60_000) for c in calls]
            # any task invoked before every other returned may have taken the lock first
            first_ret = min(rets)
            winner = rng.choice([k for k in range(tasks) if calls[k] <= first_ret])
            loser = (winner + 1) % tasks
            for task in range(tasks):
                won = task == winner or (r == forge_round and task == loser)
                result = ARENA if won else -mm.EEXIST
                writer.write(Operation(task, probe, result, calls[task], rets[task], r))
            c = max(rets) + rng.randrange(500, 5_000)
            writer.write(Operation(0, unmap, 0, c, c + rng.randrange(1_000, 8_000), r))
            t = c + 10_000
    return rounds


_CHILD = """
import json, resource, sys, time
from stress.history import read_history
from stress.checker import check_events, check_history, params_of, to_events
start, cpu0 = time.perf_counter(), time.process_time()
header, reader = read_history(sys.argv[1])
events, rounds = to_events(reader)
loaded, cpu1 = time.perf_counter(), time.process_time()
result = check_events(params_of(header), events, rounds, timeout=float(sys.argv[2]))
end, cpu2 = time.perf_counter(), time.process_time()
rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
          resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"read": loaded - start, "check": end - loaded, "rss_kib": rss,
                  "read_cpu": cpu1 - cpu0, "check_cpu": cpu2 - cpu1,
                  "verdict": result.verdict.value, "reason": result.reason,
                  "operations": result.operations, "partitions": result.partitions}))
"""


def measure(path: Path, timeout: float = 120.0) -> dict[str, object]:
    """Read and check ``path`` in a child process: times, peak RSS and the verdict."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(timeout)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _times(m: dict[str, Any]) -> dict[str, float]:
    """The timings of a `measure` result."""
    return {k: float(v) for k, v in m.items() if k in _TIMES}


def _median_run(
    path: Path, repeat: int, key: Callable[[dict[str, float]], float]
) -> dict[str, Any]:
    """`measure` ``repeat`` times: the run whose ``key`` of its times is the median."""
    runs = [measure(path) for _ in range(max(1, repeat))]
    runs.sort(key=lambda m: key(_times(m)))
    return runs[len(runs) // 2]


def bench_race(repeat: int = 1, operations: int = OPERATIONS) -> list[Figure]:
    """Figures: read + check time and peak memory of a clean history; time to find a forgery
    (each the median of ``repeat`` runs)."""
    figures = []
    size = "1M" if operations == 1_000_000 else f"{operations:,}"
    with tempfile.TemporaryDirectory(prefix="mmrace-bench-") as tmp:
        clean = Path(tmp) / "race.jsonl"
        rounds = write_race_history(clean, operations)
        m = _median_run(clean, repeat, lambda t: t["read_cpu"] + t["check_cpu"])
        t = _times(m)
        total = t["read_cpu"] + t["check_cpu"]
        right = m["verdict"] == "OK"
        note = (
            f"CPU time, median of {max(1, repeat)}; {m['operations']} ops, {rounds} rounds, "
            f"{m['partitions']} partitions; "
            f"read {t['read_cpu']:.1f} + check {t['check_cpu']:.1f} s CPU, "
            f"{t['read'] + t['check']:.1f} s wall (load {os.getloadavg()[0]:.1f}); "
            "no peer figure (the peer reads no mmrace history)"
        )
        if not right:
            note = f"WRONG VERDICT {m['verdict']}: {m['reason']}; " + note
        figures.append(
            Figure(f"race {size}: read + check", total, "s", 3.0, right and total <= 3, note)
        )
        rss_mb = int(m["rss_kib"]) / 1024
        memory = Figure(
            f"race {size}: peak memory", rss_mb, "MB", 300.0, rss_mb <= 300, "no peer figure"
        )
        figures.append(memory)
        forged = Path(tmp) / "forged.jsonl"
        write_race_history(forged, operations, forge_round=rounds // 2)
        f = _median_run(forged, repeat, lambda t: t["check_cpu"])
        t = _times(f)
        found = f["verdict"] == "VIOLATION"
        seconds = t["check_cpu"]
        note = (
            f"CPU time, median of {max(1, repeat)}, after reading ({t['read_cpu']:.1f} s CPU; "
            f"{t['check']:.1f} s wall); "
            f"no peer figure; {f['reason']}"
        )
        if not found:
            note = f"NOT FOUND: {f['verdict']}; " + note
        name = f"race {size}: forged double win found"
        figures.append(Figure(name, seconds, "s", 1.0, found and seconds <= 1, note))
    return figures


register("race", lambda repeat: bench_race(repeat))


if __name__ == "__main__":
    from stress.selftest.bench_checker import format_table

    size = int(sys.argv[1]) if len(sys.argv) > 1 else OPERATIONS
    start = time.perf_counter()
    print(format_table(bench_race(1, size)))
