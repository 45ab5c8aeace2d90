"""The HTML report and JUnit XML: structure, embedded plots, escaping, a real headless browser."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from plots import save
from plots.data import (
    Latencies,
    LockWaits,
    OutcomeRow,
    RunData,
    Timeline,
    TimelineCall,
)
from stress.report import Check, RunView, junit_xml, render_html
from stress.verdict import Verdict

PASS, FAIL, UNKNOWN = Verdict.OK, Verdict.VIOLATION, Verdict.UNKNOWN

CEX = Timeline(
    "Counterexample: 2 calls both won 0x100000000000",
    (
        TimelineCall(0, "mmap(0x100000000000, 4096) → 0x100000000000", 100, 900, order=1),
        TimelineCall(
            1,
            "mmap(0x100000000000, 4096) → 0x100000000000",
            200,
            800,
            conflict=True,
            reason="<range> already mapped by task 0",
        ),
    ),
)

VIEW = RunView(
    name="same-range-model-s1",
    run=RunData(
        title="same-range on model, 2 tasks, 20 rounds",
        target="model",
        tasks=2,
        rounds=20,
        wins=(12, 9),
        latencies=Latencies(won=(1000, 2000, 2500), eexist=(1500, 3000)),
        lock_waits=LockWaits((0, 500, 1000), measured=False),
        outcomes=(
            OutcomeRow("1 winner, 1 EEXIST", 19, "ACCEPTABLE"),
            OutcomeRow("2 winners", 1, "FORBIDDEN"),
        ),
        timeline=CEX,
    ),
    facts=(("workload", "same-range"), ("target", "model"), ("seed", "1")),
    checks=(
        Check("linearizability", FAIL, "not linearizable: two winners", 0.25),
        Check("grading strict", FAIL, "1 forbidden outcome"),
        Check("grading compat", PASS),
        Check("interference", UNKNOWN, "3 rounds did not overlap"),
    ),
    problems=("round 4: calls did not overlap",),
    counterexample=CEX,
    replay="mmrace replay runs/x --round 7",
)


class _Collector(HTMLParser):
    """Collects start tags, section ids, img sources and the open/close balance."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.sections: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id") or "")
        if tag == "img":
            self.images.append(a)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def images() -> dict[str, bytes]:
    return save.render(save.run_layouts(VIEW.run))


@pytest.fixture(scope="module")
def page(images: dict[str, bytes]) -> str:
    return render_html(VIEW, images)


def parse(page: str) -> _Collector:
    parser = _Collector()
    parser.feed(page)
    parser.close()
    return parser


def test_report_is_well_formed_html(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    doc = parse(page)
    assert doc.errors == []
    assert doc.stack == []
    assert doc.tags[:3] == ["html", "head", "meta"]
    assert doc.sections == ["verdicts", "replay", "counterexample", "outcomes", "plots", "run"]


def test_report_embeds_every_plot_inline(page: str, images: dict[str, bytes]) -> None:
    doc = parse(page)
    assert len(doc.images) == len(images) == 5
    for img, (name, data) in zip(doc.images, images.items(), strict=True):
        src = img["src"] or ""
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]) == data
        assert img["alt"] == f"{name} plot"
    assert "http://" not in page and "https://" not in page  # nothing to fetch


def test_report_shows_verdicts_outcomes_counterexample_and_replay(page: str) -> None:
    text = " ".join(parse(page).text)
    assert "overall verdict" in text and FAIL.value in text
    assert "not linearizable: two winners" in text
    assert "1 winner, 1 EEXIST" in text and "95.0%" in text and "FORBIDDEN" in text
    assert "<range> already mapped by task 0" in text  # escaped in the page, intact in text
    assert "<range>" not in page
    assert "mmrace replay runs/x --round 7" in text
    assert 'class="conflict"' in page


def test_report_without_counterexample_or_replay_omits_them(images: dict[str, bytes]) -> None:
    bare = RunView(
        name="ok",
        run=VIEW.run,
        facts=(),
        checks=(Check("linearizability", PASS),),
    )
    doc = parse(render_html(bare, {}))
    assert doc.sections == ["verdicts", "outcomes", "plots", "run"]
    assert bare.verdict == PASS


def test_overall_verdict_is_never_pass_when_a_check_could_not_judge() -> None:
    checks = (Check("linearizability", PASS), Check("interference", UNKNOWN, "no overlap"))
    assert RunView("x", VIEW.run, (), checks).verdict == UNKNOWN
    assert RunView("x", VIEW.run, (), ()).verdict == UNKNOWN
    assert VIEW.verdict == FAIL


def test_junit_one_testcase_per_check() -> None:
    root = ET.fromstring(junit_xml(VIEW))
    assert root.tag == "testsuites"
    assert root.attrib["tests"] == "4"
    assert root.attrib["failures"] == "2"
    assert root.attrib["errors"] == "1"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.attrib["name"] for c in cases] == [
        "linearizability",
        "grading strict",
        "grading compat",
        "interference",
    ]
    failure = cases[0].find("failure")
    assert failure is not None
    assert failure.attrib["message"] == "not linearizable: two winners"
    assert cases[0].attrib["time"] == "0.250"
    assert cases[2].find("failure") is None and cases[2].find("error") is None
    error = cases[3].find("error")
    assert error is not None and error.attrib["type"] == UNKNOWN.value
    props = {p.attrib["name"]: p.attrib["value"] for p in suite.iter("property")}
    assert props["workload"] == "same-range"
    out = suite.find("system-out")
    assert out is not None and "mmrace replay runs/x --round 7" in (out.text or "")


CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (/usr/bin/chromium)")
def test_report_renders_in_headless_chromium(page: str, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text(page, encoding="utf-8")
    shot = tmp_path / "shot.png"
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            report.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000  # a blank page compresses to a few kB
    from matplotlib.image import imread

    pixels = imread(str(shot))
    assert pixels.shape[0] == 2000 and pixels.shape[1] == 1200
    # the page is not blank: many distinct colours (badges, plots, tables)
    assert len({tuple(p) for p in pixels[::20, ::20].reshape(-1, pixels.shape[2]).tolist()}) > 20


# --- on real runs ----------------------------------------------------------------------------


def _mmrace(*argv: str) -> int:
    from stress.cli import main

    return main(list(argv))


@pytest.fixture(scope="module")
def ok_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ok"
    code = _mmrace(
        "run", "same-page", "--tasks", "3", "--rounds", "12", "--seed", "1",
        "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert code == 0
    return out


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "bad"
    code = _mmrace(
        "run", "same-page", "--tasks", "3", "--rounds", "12", "--seed", "2",
        "--variant", "check-then-act", "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert code == 1
    return out


def test_write_report_on_a_real_run(ok_run: Path) -> None:
    from stress.report import load_run, write_report

    path = write_report(ok_run)
    assert path == ok_run / "report.html"
    doc = parse(path.read_text(encoding="utf-8"))
    assert doc.errors == [] and doc.stack == []
    names = [
        "outcomes", "wins", "winner-rank", "in-flight", "latency", "latency-time", "lock-wait",
        "timeline",
    ]  # fmt: skip
    assert [img["alt"] for img in doc.images] == [f"{n} plot" for n in names]
    assert sorted(p.name for p in (ok_run / "plots").iterdir()) == sorted(f"{n}.png" for n in names)
    view = load_run(ok_run)
    assert view.verdict == PASS
    assert sum(view.run.wins) == 12  # one winner per round on the correct model
    assert (view.run.probes, view.run.lost) == (36, 24)
    assert "counterexample" not in doc.sections


def test_report_of_a_violation_shows_the_counterexample(bad_run: Path, tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    assert _mmrace("report", str(bad_run), "--junit", str(junit)) == 1
    page = (bad_run / "report.html").read_text(encoding="utf-8")
    doc = parse(page)
    assert "counterexample" in doc.sections and "replay" in doc.sections
    assert 'class="conflict"' in page
    assert 'data-js="static"' in page and 'class="call stuck"' in page  # the explorer
    text = json.loads((bad_run / "summary.json").read_text())["check"]["counterexample"]
    assert "(step 0 .. step " in text and " ns" not in text  # the step clock, as steps
    root = ET.fromstring(junit.read_text(encoding="utf-8"))
    failed = [c.attrib["name"] for c in root.iter("testcase") if c.find("failure") is not None]
    assert "linearizability" in failed and "grading strict" in failed


def test_plot_redraws_reproducibly(ok_run: Path) -> None:
    assert _mmrace("plot", str(ok_run)) == 0
    first = {p.name: p.read_bytes() for p in (ok_run / "plots").iterdir()}
    assert _mmrace("plot", str(ok_run)) == 0
    second = {p.name: p.read_bytes() for p in (ok_run / "plots").iterdir()}
    assert first == second and "timeline.png" in first


def test_bad_run_directories_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _mmrace("report", str(tmp_path / "missing")) == 2
    assert "no such run directory" in capsys.readouterr().err
    (tmp_path / "summary.json").write_text("{not json", encoding="utf-8")
    assert _mmrace("report", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "summary.json: bad JSON" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "summary.json").write_text('{"verdict": "OK"}', encoding="utf-8")
    assert _mmrace("plot", str(tmp_path)) == 2
    assert "not an mmrace summary" in capsys.readouterr().err


def test_grading_checks_from_summary_rows() -> None:
    from stress.report._view import _grading_check

    def mode(verdict: str, *grades: tuple[str, int]) -> dict[str, object]:
        rows = [{"outcome": "k", "grade": g, "count": n, "first_round": 4} for g, n in grades]
        return {"verdict": verdict, "outcomes": rows}

    ok = _grading_check("g", mode("OK", ("ACCEPTABLE", 5), ("INTERESTING", 2)))
    assert (ok.verdict, ok.message) == (PASS, "no forbidden outcome, 2 round(s) INTERESTING")
    bad = _grading_check("g", mode("VIOLATION", ("ACCEPTABLE", 5), ("FORBIDDEN", 3)))
    assert (bad.verdict, bad.message) == (FAIL, "3 round(s) FORBIDDEN (first: round 4)")
    hole = _grading_check("g", mode("VIOLATION", ("UNSPECIFIED", 1)))
    assert hole.verdict == FAIL and "no grade" in hole.message
    assert _grading_check("g", mode("UNKNOWN", ("UNKNOWN", 1))).verdict == UNKNOWN
    assert _grading_check("g", None).verdict == UNKNOWN
