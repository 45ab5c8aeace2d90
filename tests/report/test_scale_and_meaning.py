"""The report at scale and what it says: a synthetic 4096-task run dir gives a small page with
capped rows; host facts, a rerun command, no scheduler for the kernel, no Python reprs, the
kernel start-order caveat; the interactive counterexample in a headless browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from plots.timeline import MAX_ROWS
from stress.report import load_run, write_report
from stress.report._html import MAX_TABLE_ROWS

TASKS = 4096
B = 0x100000000000
PAGE_LIMIT = 3_000_000  # bytes: "a few MB" at most, whatever the run's size


def _summary(tasks: int, *, target: str = "model", cex_tasks: int = 0) -> dict[str, Any]:
    """A judged run's summary.json as the driver writes it (the keys the report reads)."""
    calls = [
        {
            "task": t,
            "label": f"mmap {B:#x}+0x1000 → " + ("0x100000000000" if t == 0 else "EEXIST"),
            "call": 10 * t,
            "ret": 10 * t + 500,
            "outcome": "won" if t == 0 else "EEXIST",
        }
        for t in range(256)
    ]
    events = [
        {"task": t, "op": f"mmap({B:#x}, 0x1000, PROT_READ, NR)", "call": 3 * t, "ret": 3 * t + 50,
         "result": B}
        for t in range(cex_tasks)
    ]  # fmt: skip
    outcomes = [
        {"outcome": f"winners=1 eexist={tasks - 1 - k} moved={k}", "count": 1,
         "grade": "FORBIDDEN" if k == 150 else "ACCEPTABLE", "description": "x " * 40,
         "first_round": k}
        for k in range(200)
    ]  # fmt: skip
    return {
        "mmrace_summary": 1,
        "verdict": "VIOLATION" if cex_tasks else "OK",
        "exit_code": 1 if cex_tasks else 0,
        "reasons": [],
        "warnings": [],
        "target": target,
        "target_info": {"arenas": ["[0x100000000000, 0x100040000000)"], "threads": tasks}
        if target == "kernel"
        else {"scheduler": "random", "clock": "steps"},
        "clock": "ns" if target == "kernel" else "steps",
        "workload": "same-page",
        "workload_ref": "same-page",
        "seed": 7,
        "tasks": tasks,
        "rounds": 200,
        "operations": 200 * tasks,
        "race_operations": 200 * tasks,
        "seconds": 10.0,
        "throughput": 1000.0,
        "overlap": {"rounds": 200, "ratio": 1.0, "full_rounds": 100},
        "problems": [],
        "problem_count": 0,
        "check": {
            "verdict": "VIOLATION" if cex_tasks else "OK",
            "reason": "",
            "seconds": 1.0,
            "counterexample_events": {
                "events": events,
                "linearized": list(range(cex_tasks // 2)),
                "stuck": [{"event": cex_tasks // 2, "why": "already mapped by task 0"}],
            }
            if cex_tasks
            else None,
        },
        "grading": {"strict": {"verdict": "OK", "outcomes": outcomes}},
        "race": {
            "wins": [1 if t % 20 == 0 else 0 for t in range(tasks)],
            "probes": 200 * tasks,
            "lost": 200 * (tasks - 1),
            "latency": {"won": list(range(200)), "EEXIST": list(range(5000)), "other": []},
            "lock_waits": list(range(5000)),
            "in_flight": [[k, 1] for k in range(1, 200)],
            "winner_rank": [[k, 1] for k in range(200)],
            "latency_over_time": {
                "bin_rounds": 4,
                "bins": [
                    {"first_round": 4 * i, "calls": 9, "mean": 50.0, "max": 90} for i in range(50)
                ],
            },
            "sample_round": {"title": "Round 0: racing calls", "calls": calls},
        },
        "replay": None if target == "kernel" else "mmrace replay x",
        "rerun": "mmrace run same-page --target kernel --tasks 4096 --rounds 200 --seed 7"
        if target == "kernel"
        else None,
        "host": {"kernel": "Linux 6.1.0 x86_64", "page_size": 4096, "mmap_min_addr": 65536,
                 "lsm_mmap_min_addr": 65536, "privileged": False},
    }  # fmt: skip


def _run_dir(tmp: Path, summary: dict[str, Any], scheduler: str = "random") -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    (tmp / "run.json").write_text(json.dumps({"scheduler": scheduler}), encoding="utf-8")
    return tmp


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run_dir(tmp_path_factory.mktemp("big") / "run", _summary(TASKS, cex_tasks=300))


def test_a_4096_task_report_is_small(big: Path) -> None:
    page = write_report(big).read_text(encoding="utf-8")
    assert len(page.encode()) < PAGE_LIMIT
    drawn = re.findall(r'<text class="task-label"[^>]*>task (\d+)</text>', page)
    assert 0 < len(drawn) <= MAX_ROWS  # the counterexample picture is capped too
    assert "more not drawn" in page
    assert page.count('<tr class="conflict">') == 1  # the stuck call is kept in the table
    assert f"{300 - MAX_TABLE_ROWS} more calls not shown" in page
    assert f"{200 - MAX_TABLE_ROWS} more outcome patterns not shown" in page


def test_page_says_what_ran_where(tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "k", _summary(8, target="kernel"))
    view = load_run(run)
    facts = dict(view.facts)
    assert "scheduler" not in facts  # free OS threads: no scheduler chose the interleavings
    details = facts["target details"]
    assert details == "arenas=[0x100000000000, 0x100040000000), threads=8"  # no list repr
    page = write_report(run).read_text(encoding="utf-8")
    host = page.split('id="host">', 1)[1].split("</p>", 1)[0]
    assert "Linux 6.1.0" in host and "0x10000" in host and "unprivileged" in host
    assert "mmrace run same-page --target kernel --tasks 4096" in page  # the rerun command
    assert "start order" in page  # the kernel wins caveat


def test_step_clock_is_printed_as_steps(tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "m", _summary(4, cex_tasks=4))
    page = write_report(run).read_text(encoding="utf-8")
    assert "invoked (steps)" in page
    assert " ns" not in page.split('id="counterexample"', 1)[1].split("</section>", 1)[0]


CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp / 'profile'}", *args,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def violation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = _run_dir(tmp_path_factory.mktemp("cex") / "run", _summary(6, cex_tasks=6))
    return write_report(run, save_plots=False)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (/usr/bin/chromium)")
def test_counterexample_explorer_runs_in_headless_chromium(violation: Path, tmp_path: Path) -> None:
    dom = _chromium(tmp_path, "--dump-dom", violation.as_uri()).stdout.decode()
    root = dom.split('id="cex-explorer"', 1)[1]
    assert root.split(">", 1)[0].strip().endswith('data-js="ready"')  # the script ran
    assert dom.count('class="lin-step"') == 3  # one list item per linearized call
    assert dom.count('class="stuck-step"') == 1
    assert "already mapped by task 0" in dom.split('class="stuck-step"', 1)[1].split("</li>")[0]
    assert dom.count('class="call stuck"') == 1 and dom.count('class="lin-dot"') == 3
    points = re.search(r'class="lin-line" points="([^"]*)"', dom)
    assert points is not None and len(points.group(1).split()) == 3


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (/usr/bin/chromium)")
def test_counterexample_explorer_screenshot_is_not_blank(violation: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1100,1400", violation.as_uri())
    from matplotlib.image import imread

    pixels = imread(str(shot))
    assert pixels.shape[:2] == (1400, 1100)
    colours = {tuple(p) for p in pixels[::10, ::10].reshape(-1, pixels.shape[2]).tolist()}
    assert len(colours) > 20


def test_parallel_drawing_gives_the_same_bytes_as_in_process(big: Path) -> None:
    from stress.report._render import render

    run = load_run(big).run
    parallel = render("run", run, workers=2)
    here = render("run", run, workers=1)
    assert list(parallel) == list(here) and parallel == here
