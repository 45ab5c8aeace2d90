"""The judged run in words: what `mmrace run` and `mmrace replay` print (from summary.json)."""

from __future__ import annotations

from typing import Any

from stress.verdict import Verdict


def format_summary(summary: dict[str, Any]) -> str:
    """The human report: facts, verdicts, and on a violation the counterexample and replay."""
    s = summary
    unit = "steps" if s["clock"] == "steps" else "ns"
    lines = [
        f"target     {s['target']}  ({_info(s['target_info'])})",
        f"workload   {s['workload']}   tasks {s['tasks']}   seed {s['seed']}",
        f"rounds     {s['rounds']}"
        + (
            " (recorded schedules)"
            if s.get("exploration")
            else (f" of {s['rounds_requested']}" if s["rounds_requested"] else "")
        )
        + (f"   INCOMPLETE: {s['interrupted']}" if s["interrupted"] else ""),
        f"operations {s['operations']}  in {s['seconds']:.2f} s  ({s['throughput']:,.0f} ops/s)",
        f"overlap    {s['overlap']['rounds']}/{s['rounds']} rounds really raced "
        f"({100 * s['overlap']['ratio']:.1f}%), all calls at once in "
        f"{s['overlap'].get('full_rounds', '?')}   stamps: {unit}",
    ]
    explored = exploration_line(s.get("exploration"))
    if explored:
        lines.append(f"explored   {explored}")
    c = s["check"]
    check_line = f"checker    {c['verdict']}"
    if c["reason"]:
        check_line += f": {c['reason']}"
    lines.append(check_line + f"   ({c['operations']} ops, {c['seconds']:.2f} s)")
    for mode, g in (s.get("grading") or {}).items():
        if not isinstance(g, dict) or "outcomes" not in g:
            continue
        top = ", ".join(f"{o['outcome']} ×{o['count']} {o['grade']}" for o in g["outcomes"][:3])
        more = len(g["outcomes"]) - 3
        if more > 0:
            top += f", … {more} more"
        shown = g.get("worst") or g["verdict"]
        lines.append(f"grading    {mode:<6} {shown:<12} {top}")
    if s["problem_count"]:
        lines.append(f"problems   {s['problem_count']}: {s['problems'][0]}")
    verdict = Verdict.parse(s["verdict"])
    mark = "UNKNOWN (could not judge)" if verdict is Verdict.UNKNOWN else verdict.value
    lines.append(f"verdict    {mark}")
    for reason in s["reasons"]:
        lines.append(f"           - {reason}")
    for warning in s["warnings"]:
        lines.append(f"warning    {warning}")
    if c["counterexample"]:
        lines.append("")
        lines.append("counterexample:")
        lines.extend("  " + line for line in c["counterexample"].splitlines())
    if verdict is not Verdict.OK and s["replay"]:
        lines.append("")
        lines.append(f"reproduce: {s['replay']}")
    lines.append(f"run dir    {s['run_dir']}")
    return "\n".join(lines)


def exploration_line(e: dict[str, Any] | None) -> str:
    """The exhaustive search in one line: schedules, pruning, whether it was complete."""
    if not e or "complete" not in e:
        return ""
    pruned = f" ({e['pruned']:,} cut short at an explored state)" if e.get("pruned") else ""
    plans = len(e.get("round_plans") or [])
    k = e["preemptions"]
    if e["complete"]:
        state = f"complete for at most {k} preemption(s)"
    else:
        state = f"NOT complete for at most {k} preemption(s): {e.get('stopped') or 'cap reached'}"
    text = f"{e['schedules']:,} schedules{pruned} of {plans} round plan(s), {state}"
    first = e.get("first_failure")
    if first:
        text += f"; first failing schedule: round {first['round']}, choices {first['choices']}"
    return text


def plain(value: Any) -> str:
    """A JSON value in words: lists comma-joined, no Python reprs (quotes, brackets, None)."""
    if isinstance(value, list | tuple):
        return ", ".join(plain(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={plain(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _info(info: dict[str, Any]) -> str:
    parts = [f"{k}={plain(v)}" for k, v in info.items() if v not in (None, "", False, [], {})]
    return ", ".join(parts) or "-"
