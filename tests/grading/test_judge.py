"""The run's verdict: a race that never raced is no verification, and an exhaustive search's OK
says exactly what it covers (and an incomplete one is no OK)."""

from __future__ import annotations

from typing import Any

from stress.grading import CheckSummary, judge
from stress.verdict import Verdict

CLEAN = CheckSummary(Verdict.OK, "", 0.0, 10, 1)


def search(complete: bool, **more: Any) -> dict[str, Any]:
    plans = [{"round": 0, "schedules": 42, "pruned": 16, "complete": complete}]
    return {
        "preemptions": 2,
        "max_schedules": 100,
        "schedules": 42,
        "pruned": 16,
        "complete": complete,
        "stopped": None,
        "round_plans": plans,
        **more,
    }


def test_rounds_that_raced_but_were_never_contested_are_unknown() -> None:
    got = judge(CLEAN, None, rounds=50, racing_rounds=50, contested_rounds=0, no_race_hint="X")
    assert got.verdict is Verdict.UNKNOWN and got.exit_code == 3
    assert got.reasons[0].startswith("no round really raced: in none of the 50 rounds")
    assert got.reasons[0].endswith("(X)")


def test_one_contested_round_is_enough_and_one_task_is_no_race() -> None:
    assert judge(CLEAN, None, rounds=50, racing_rounds=50, contested_rounds=1).verdict is Verdict.OK
    # one task (or a workload whose rounds race nobody): nothing could have raced
    assert judge(CLEAN, None, rounds=50, racing_rounds=0, contested_rounds=0).verdict is Verdict.OK


def test_a_violation_is_still_a_violation_when_nothing_raced() -> None:
    bad = CheckSummary(Verdict.VIOLATION, "two wins", 0.0, 10, 1)
    got = judge(bad, None, rounds=5, racing_rounds=5, contested_rounds=0)
    assert got.verdict is Verdict.VIOLATION
    assert any("no round really raced" in r for r in got.reasons)


def test_a_complete_search_says_what_its_ok_means() -> None:
    got = judge(
        CLEAN, None, rounds=26, racing_rounds=26, contested_rounds=26, exploration=search(True)
    )
    assert got.verdict is Verdict.OK
    assert got.reasons == (
        "no violation in any schedule up to 2 preemptions: the search was complete for the bound "
        "(42 schedules, 16 of them cut short at a state already explored, 1 round plan)",
    )


def test_an_incomplete_search_is_unknown() -> None:
    capped = judge(CLEAN, None, rounds=26, exploration=search(False))
    assert capped.verdict is Verdict.UNKNOWN
    assert "the cap of 100 schedules per round plan was reached" in capped.reasons[0]
    timed = judge(
        CLEAN, None, rounds=26, exploration=search(False, stopped="the time budget ran out")
    )
    assert "(the time budget ran out)" in timed.reasons[0]
    bad = CheckSummary(Verdict.VIOLATION, "two wins", 0.0, 10, 1)
    stopped = search(False, stopped="stopped at the first failing schedule (round 3)")
    found = judge(bad, None, rounds=4, exploration=stopped)
    assert found.verdict is Verdict.VIOLATION and len(found.reasons) == 1


def test_a_replayed_search_claims_nothing() -> None:
    got = judge(CLEAN, None, rounds=26, exploration={"replay": True, "schedules": 26})
    assert got.verdict is Verdict.OK and got.reasons == ()
