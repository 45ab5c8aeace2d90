"""The built-in workload catalog. Every entry is a plain `Workload` value (the same class a TOML
file produces), so each could equally be written as a TOML file (see workloads/examples/)."""

from __future__ import annotations

import mm
from workloads._model import (
    ACCEPTABLE,
    FORBIDDEN,
    INTERESTING,
    Boundary,
    Grade,
    OpTemplate,
    Workload,
)

HINT = mm.MAP_PRIVATE | mm.MAP_ANONYMOUS
FIXED = HINT | mm.MAP_FIXED

_ALL_LOSERS_EEXIST = "winners + eexist == calls"


def _one_winner(what: str) -> tuple[Grade, ...]:
    return (
        Grade(FORBIDDEN, "winners > 1", f"several tasks mapped {what}: the probe is not atomic"),
        Grade(FORBIDDEN, "winners == 0", f"nobody mapped {what} although it was free"),
        Grade(
            INTERESTING,
            f"winners == 1 and {_ALL_LOSERS_EEXIST} and not first_won",
            "exactly one winner, and it was not the first task to call",
        ),
        Grade(
            ACCEPTABLE,
            f"winners == 1 and {_ALL_LOSERS_EEXIST}",
            "exactly one winner; every other task got EEXIST",
        ),
    )


_DISJOINT_GRADES = (
    Grade(FORBIDDEN, "not disjoint", "two winners' ranges overlap: a probe was not atomic"),
    Grade(
        FORBIDDEN,
        "not losers_overlap",
        "a probe got EEXIST although no mapping overlapped its range",
    ),
    Grade(FORBIDDEN, "winners == 0", "nobody won although the range was free"),
)

SAME_PAGE = Workload(
    name="same-page",
    summary=(
        "Every task NOREPLACE-maps the same single page of a free arena, the textbook atomic "
        "probe (spec RACE1). Exactly one task must get the page's address and every other task "
        "must fail with EEXIST; two winners mean the overlap test and the insertion were not one "
        "atomic step. A winner that was not the first task to call is interesting but allowed."
    ),
    race=(OpTemplate("mmap", offset=0, pages=1),),
    grades=_one_winner("the page"),
)

SAME_RANGE = Workload(
    name="same-range",
    summary=(
        "Every task NOREPLACE-maps the same 4-page range. Exactly one winner, all others EEXIST: "
        "a multi-page request must be tested and inserted as a whole, never page by page."
    ),
    race=(OpTemplate("mmap", offset=0, pages=4),),
    grades=_one_winner("the range"),
)

PARTIAL_OVERLAP = Workload(
    name="partial-overlap",
    summary=(
        "Tasks race for ranges overlapping each other at the head, the tail, as superset and "
        "subset. The slots are [2,6), [0,3), [5,8), [0,8), [3,4) in pages, cycled over tasks and "
        "shuffled per round. The winners' ranges must be pairwise disjoint, and every loser's "
        "EEXIST must be explained by a winner overlapping it. Several disjoint winners (e.g. head "
        "and tail) are interesting."
    ),
    race=(OpTemplate("mmap", offset=(2, 0, 5, 0, 3), pages=(4, 3, 3, 8, 1)),),
    grades=(
        *_DISJOINT_GRADES,
        Grade(INTERESTING, f"winners > 1 and {_ALL_LOSERS_EEXIST}", "several disjoint winners"),
        Grade(ACCEPTABLE, _ALL_LOSERS_EEXIST, "one winner; the overlapping others got EEXIST"),
    ),
    shuffle=True,
)

ADJACENT = Workload(
    name="adjacent",
    summary=(
        "Task i NOREPLACE-maps page i: the ranges touch but never overlap. Every task must win; "
        "an EEXIST means a mapping that only touches the range was counted as an overlap "
        "(spec KS7/KS8)."
    ),
    race=(OpTemplate("mmap", offset="task", pages=1),),
    grades=(
        Grade(FORBIDDEN, "eexist > 0", "a touching but disjoint mapping was counted as overlap"),
        Grade(ACCEPTABLE, "winners == tasks", "every task won its own page"),
    ),
)

CHAIN = Workload(
    name="chain",
    summary=(
        "Task slot i NOREPLACE-maps pages [i, i+2), overlapping its neighbours (spec RACE2). "
        "Slots are shuffled per round. The winners must be pairwise disjoint and every "
        "loser must overlap a winner; fewer winners than the alternating maximum is interesting."
    ),
    race=(OpTemplate("mmap", offset="task", pages=2),),
    grades=(
        *_DISJOINT_GRADES,
        Grade(
            INTERESTING,
            f"{_ALL_LOSERS_EEXIST} and winners < (tasks + 1) // 2",
            "fewer winners than the alternating maximum: the interleaving left gaps",
        ),
        Grade(ACCEPTABLE, _ALL_LOSERS_EEXIST, "disjoint winners; each loser overlaps one"),
    ),
    shuffle=True,
)

_CHURN_OK = "munmap_ok == munmap_calls and fixed_winners == fixed_calls"
CHURN = Workload(
    name="churn",
    summary=(
        "NOREPLACE probes race munmap and MAP_FIXED replacement of a mapped range. "
        "A 4-page range is mapped in setup; then NOREPLACE probes of the range and of its second "
        "page race munmap of the range and MAP_FIXED replacement of it (roles cycled over tasks "
        "in fours). A probe can only win after an munmap freed the range, so the winners can never "
        "outnumber the munmaps; munmap and MAP_FIXED always succeed. A probe that slipped into the "
        "gap between an munmap and a replacement is interesting."
    ),
    setup=(OpTemplate("mmap", offset=0, pages=4, flags=FIXED, label="setup"),),
    race=(
        OpTemplate("mmap", offset=0, pages=4, tasks="task % 4 == 0"),
        OpTemplate("mmap", offset=1, pages=1, tasks="task % 4 == 1"),
        OpTemplate("munmap", offset=0, pages=4, tasks="task % 4 == 2"),
        OpTemplate("mmap", offset=0, pages=4, flags=FIXED, tasks="task % 4 == 3"),
    ),
    grades=(
        Grade(
            FORBIDDEN,
            "winners > munmap_calls",
            "more probes won than munmaps freed the range: a probe clobbered a mapping",
        ),
        Grade(
            INTERESTING,
            f"winners > 0 and {_ALL_LOSERS_EEXIST} and {_CHURN_OK}",
            "a probe won the window between an munmap and a replacement",
        ),
        Grade(
            ACCEPTABLE,
            f"{_ALL_LOSERS_EEXIST} and {_CHURN_OK}",
            "every probe found the range mapped",
        ),
    ),
    shuffle=True,
)

HINT_VS_FIXED = Workload(
    name="hint-vs-fixed",
    summary=(
        "Non-fixed hints race NOREPLACE probes for the same 2-page range. "
        "Half the tasks NOREPLACE-map the range while the other half ask for the same "
        "address as a mere hint (no fixed flag). Exactly one call gets the range: a probe (and "
        "every hint is placed elsewhere), or a hint (and every probe gets EEXIST). A hint that "
        "beat all the probes is interesting."
    ),
    race=(
        OpTemplate("mmap", offset=0, pages=2, tasks="task % 2 == 0"),
        OpTemplate("mmap", offset=0, pages=2, flags=HINT, tasks="task % 2 == 1"),
    ),
    grades=(
        Grade(FORBIDDEN, "winners + hint_winners > 1", "two calls both got the contested range"),
        Grade(FORBIDDEN, "winners + hint_winners == 0", "nobody got the free range"),
        Grade(
            INTERESTING,
            "hint_winners == 1 and eexist == calls and hint_moved == hint_calls - 1",
            "a non-fixed hint took the range before every probe",
        ),
        Grade(
            ACCEPTABLE,
            f"winners == 1 and {_ALL_LOSERS_EEXIST} and hint_moved == hint_calls",
            "a probe won; every hint was placed elsewhere",
        ),
    ),
    shuffle=True,
)

_LOW_OK = (
    "low_winners + low_eexist == low_calls and lowfixed_winners == lowfixed_calls"
    " and low_winners <= 1"
    " and (low_winners == 1 or lowfixed_calls > 0 or low_calls == 0)"
)
ZERO_PAGE = Workload(
    name="zero-page",
    summary=(
        "NOREPLACE and MAP_FIXED requests race for page 0 and for vm.mmap_min_addr. "
        "Roles are cycled over tasks in fours. Below vm.mmap_min_addr a fixed mapping needs "
        "CAP_SYS_RAWIO: without it every request at 0 fails with EPERM, with it one probe or a "
        "MAP_FIXED gets page 0 (spec LB7, Z1). At vm.mmap_min_addr itself no privilege is needed "
        "(Z2). The grade depends on the target's privilege (model params `privileged`)."
    ),
    race=(
        OpTemplate("mmap", anchor="zero", tasks="task % 4 == 0", label="zero"),
        OpTemplate("mmap", anchor="zero", flags=FIXED, tasks="task % 4 == 1", label="zerofixed"),
        OpTemplate("mmap", anchor="min_addr", tasks="task % 4 == 2", label="low"),
        OpTemplate("mmap", anchor="min_addr", flags=FIXED, tasks="task % 4 == 3", label="lowfixed"),
    ),
    grades=(
        Grade(
            FORBIDDEN,
            "not privileged and zero_winners + zerofixed_winners > 0",
            "a task without CAP_SYS_RAWIO mapped page 0",
        ),
        Grade(
            FORBIDDEN,
            "privileged and zero_eperm + zerofixed_eperm > 0",
            "CAP_SYS_RAWIO held, yet mapping page 0 gave EPERM",
        ),
        Grade(FORBIDDEN, "zero_winners > 1 or low_winners > 1", "two probes won the same page"),
        Grade(
            FORBIDDEN,
            "low_eperm + lowfixed_eperm > 0",
            "a fixed mapping at vm.mmap_min_addr was refused with EPERM",
        ),
        Grade(
            ACCEPTABLE,
            "not privileged and zero_eperm == zero_calls and zerofixed_eperm == zerofixed_calls"
            f" and {_LOW_OK}",
            "unprivileged: EPERM at page 0; at min_addr one probe won or MAP_FIXED came first",
        ),
        Grade(
            ACCEPTABLE,
            "privileged and zero_winners + zero_eexist == zero_calls and zero_winners <= 1"
            " and zerofixed_winners == zerofixed_calls"
            " and (zero_winners == 1 or zerofixed_calls > 0 or zero_calls == 0)"
            f" and {_LOW_OK}",
            "privileged: page 0 mappable; one probe won or MAP_FIXED came first, at 0 and above",
        ),
    ),
)

MANY_RANGES = Workload(
    name="many-ranges",
    summary=(
        "Many independent contested one-page ranges at once. There are max(1, tasks // 4) "
        "ranges, each contested by about four tasks (slots shuffled per round), one free page "
        "between neighbours. Each range must have "
        "exactly one winner: winners pairwise disjoint and every loser overlapping a winner. "
        "Exercises scale and the checker's partitioning into independent ranges."
    ),
    race=(OpTemplate("mmap", offset="(task % max(1, tasks // 4)) * 2", pages=1),),
    grades=(
        *_DISJOINT_GRADES,
        Grade(
            ACCEPTABLE,
            f"{_ALL_LOSERS_EEXIST} and winners == max(1, tasks // 4)",
            "one winner per range",
        ),
    ),
    shuffle=True,
)

_MPROTECT_OK = (
    f"{_ALL_LOSERS_EEXIST} and munmap_ok == munmap_calls"
    " and mprotect_ok + mprotect_enomem == mprotect_calls"
)
MPROTECT_RACE = Workload(
    name="mprotect-race",
    summary=(
        "mprotect of a range races munmap and NOREPLACE probes inside it. "
        "A 4-page range is mapped in setup; then tasks race an mprotect of the whole range, an "
        "munmap of its second page and a NOREPLACE probe of that page (roles cycled in threes). "
        "mprotect succeeds or fails with ENOMEM on the hole (changing the prefix), munmap "
        "succeeds, and a probe can win only after an munmap: winners never outnumber munmaps. "
        "An mprotect that hit the hole is interesting."
    ),
    setup=(OpTemplate("mmap", offset=0, pages=4, flags=FIXED, label="setup"),),
    race=(
        OpTemplate("mmap", offset=1, pages=1, tasks="task % 3 == 0"),
        OpTemplate("munmap", offset=1, pages=1, tasks="task % 3 == 1"),
        OpTemplate("mprotect", offset=0, pages=4, prot=mm.PROT_READ, tasks="task % 3 == 2"),
    ),
    grades=(
        Grade(
            FORBIDDEN,
            "winners > munmap_calls",
            "more probes won than munmaps freed the page: a probe clobbered a mapping",
        ),
        Grade(
            INTERESTING,
            f"mprotect_enomem > 0 and {_MPROTECT_OK}",
            "an mprotect met the hole an munmap left (ENOMEM)",
        ),
        Grade(ACCEPTABLE, _MPROTECT_OK, "mprotect, munmap and probe each saw one state"),
    ),
    shuffle=True,
)

MIB, GIB = 1 << 20, 1 << 30
BOUNDARY = Workload(
    name="boundary",
    summary=(
        "Probes straddle page-table boundaries (2 MiB, 1 GiB, 512 GiB) around a mapping just "
        "past or just before the boundary. Round r puts a boundary of 2 MiB, 1 GiB or 512 GiB "
        "(cycled) at page 4 or page 5 of an 8-page footprint (cycled), on either side of the "
        "arena's own 512 GiB boundary or its end; setup maps page 4, so the mapping lies just "
        "past the boundary or just before it. A probe of pages [2, 6) straddles the boundary "
        "with its first and last pages free and the mapping inside: it must get EEXIST, which an "
        "overlap test that steps by a level's span from an unaligned start, or looks only at the "
        "first and last page, misses. The others probe the free pages on either side, touching "
        "the mapping ([0, 4), [3, 4), [5, 8), [5, 6), slots shuffled): winners disjoint, every "
        "loser overlapping a winner, so a test at page-table granularity (any mapping in the "
        "same 2 MiB block counts) shows as an unexplained EEXIST."
    ),
    setup=(OpTemplate("mmap", offset=4, pages=1, flags=FIXED, label="setup"),),
    race=(
        OpTemplate(
            "mmap",
            offset=(2, 0, 5, 3, 5),
            pages=(4, 4, 3, 1, 1),
            tasks="task % 5 == 0",
            label="straddle",
        ),
        OpTemplate("mmap", offset=(2, 0, 5, 3, 5), pages=(4, 4, 3, 1, 1), tasks="task % 5 != 0"),
    ),
    grades=(
        Grade(
            FORBIDDEN,
            "straddle_winners > 0",
            "a probe straddling the boundary won although the page next to the boundary inside "
            "it was mapped: the overlap test skipped it and the mapping was clobbered",
        ),
        *_DISJOINT_GRADES[:2],
        Grade(FORBIDDEN, "calls > 0 and winners == 0", "nobody won the free pages"),
        Grade(
            ACCEPTABLE,
            f"straddle_eexist == straddle_calls and {_ALL_LOSERS_EEXIST}",
            "the straddling probe found the mapping; the free sides were won, once each",
        ),
    ),
    shuffle=True,
    boundary=Boundary(spans=(2 * MIB, GIB, 512 * GIB), at=(4, 5)),
)

_TOP_PAIR = "top_winners + under_winners"
TOP = Workload(
    name="top",
    summary=(
        "Probes at the top of user space (ranges ending exactly at TASK_SIZE or passing it) and "
        "just above and below vm.mmap_min_addr. Roles cycle over tasks in fours, each task "
        "making two calls: [T-2P, T) (ends at TASK_SIZE: free) then [T, T+P) (at TASK_SIZE: "
        "ENOMEM); [T-P, T+P) (passes TASK_SIZE: ENOMEM, never EEXIST, even where [T-2P, T) was "
        "won) then [T-3P, T-P) (overlaps [T-2P, T): exactly one of the two wins); [min, "
        "min+2P) (free, no privilege needed); [min-P, min+P) (starts below vm.mmap_min_addr: "
        "EPERM without CAP_SYS_RAWIO, never ENOMEM or EEXIST; with it, it competes with [min, "
        "min+2P))."
    ),
    race=(
        OpTemplate(
            "mmap", anchor="task_size", offset=-2, pages=2, tasks="task % 4 == 0", label="top"
        ),
        OpTemplate(
            "mmap", anchor="task_size", offset=0, pages=1, tasks="task % 4 == 0", label="at"
        ),
        OpTemplate(
            "mmap", anchor="task_size", offset=-1, pages=2, tasks="task % 4 == 1", label="past"
        ),
        OpTemplate(
            "mmap", anchor="task_size", offset=-3, pages=2, tasks="task % 4 == 1", label="under"
        ),
        OpTemplate(
            "mmap", anchor="min_addr", offset=0, pages=2, tasks="task % 4 == 2", label="low"
        ),
        OpTemplate(
            "mmap", anchor="min_addr", offset=-1, pages=2, tasks="task % 4 == 3", label="below"
        ),
    ),
    grades=(
        Grade(
            FORBIDDEN,
            "at_winners + past_winners > 0",
            "a probe reaching past TASK_SIZE was mapped",
        ),
        Grade(
            FORBIDDEN,
            "at_enomem < at_calls or past_enomem < past_calls",
            "a probe reaching past TASK_SIZE did not fail with ENOMEM (the range check must come "
            "first: a probe overlapping a mapping there still gets ENOMEM, not EEXIST)",
        ),
        Grade(
            FORBIDDEN,
            "below_enomem > 0",
            "a probe below vm.mmap_min_addr got ENOMEM: Linux says EPERM without CAP_SYS_RAWIO",
        ),
        Grade(
            FORBIDDEN,
            "not privileged and below_eperm < below_calls",
            "without CAP_SYS_RAWIO, a probe below vm.mmap_min_addr did not get EPERM",
        ),
        Grade(
            FORBIDDEN,
            "privileged and below_eperm > 0",
            "CAP_SYS_RAWIO held, yet a probe below vm.mmap_min_addr got EPERM",
        ),
        Grade(
            FORBIDDEN,
            "low_eperm > 0",
            "a probe at vm.mmap_min_addr itself was refused with EPERM (no privilege is needed)",
        ),
        Grade(FORBIDDEN, f"{_TOP_PAIR} > 1", "two overlapping probes at the top both won"),
        Grade(
            FORBIDDEN,
            f"top_calls + under_calls > 0 and {_TOP_PAIR} == 0",
            "nobody won the free range at the top of user space",
        ),
        Grade(
            FORBIDDEN,
            "(low_winners > 1 or low_winners + below_winners > 1)",
            "two overlapping probes at vm.mmap_min_addr both won",
        ),
        Grade(
            FORBIDDEN,
            "low_calls + below_calls > 0 and low_winners + below_winners == 0"
            " and (privileged or low_calls > 0)",
            "nobody won the free range at vm.mmap_min_addr",
        ),
        Grade(
            ACCEPTABLE,
            "top_winners + top_eexist == top_calls and under_winners + under_eexist == under_calls"
            " and low_winners + low_eexist == low_calls"
            " and below_winners + below_eexist + below_eperm == below_calls",
            "one winner at the top and one at vm.mmap_min_addr; ENOMEM past TASK_SIZE, EPERM "
            "below vm.mmap_min_addr without the capability",
        ),
    ),
)

_MIXED_OK = (
    "edge_eexist == edge_calls and fixed_winners == fixed_calls and munmap_ok == munmap_calls"
    " and mprotect_ok == mprotect_calls and winners + eexist == calls"
    " and head_winners + head_eexist == head_calls and tail_winners + tail_eexist == tail_calls"
)
MIXED = Workload(
    name="mixed",
    summary=(
        "NOREPLACE probes race munmap, mprotect and MAP_FIXED of the same and of overlapping "
        "ranges. Setup maps pages [0, 2) READ|WRITE, page 2 PROT_NONE and page 3 READ (three "
        "mappings). Roles cycle over tasks in fours: a READ probe of page 3 then an mprotect of "
        "[0, 2) to READ; an munmap of [2, 4) (two mappings, removed at once); a probe of page 2 "
        "then of page 3 (a walk across the munmap); a probe of [0, 2) then a MAP_FIXED of page 2 "
        "with PROT_NONE. Pages 0 and 1 are never unmapped, so the [0, 2) probe always gets "
        "EEXIST and leaves their contents alone; MAP_FIXED, munmap and mprotect always succeed; "
        "pages 2 and 3 are won only as often as munmaps freed them. A call failing with ENOMEM "
        "shows a mapping narrowed to its protection under a second lock after an munmap took it "
        "away; a walk that wins page 2 and then finds page 3 still mapped shows an munmap "
        "removing its two parts in two steps (the checker sees it); the footprint check after "
        "the cleanup shows an munmap that kept a mapping."
    ),
    setup=(
        OpTemplate("mmap", offset=0, pages=2, flags=FIXED, label="setup"),
        OpTemplate("mmap", offset=2, pages=1, prot=mm.PROT_NONE, flags=FIXED, label="setup"),
        OpTemplate("mmap", offset=3, pages=1, prot=mm.PROT_READ, flags=FIXED, label="setup"),
    ),
    race=(
        OpTemplate("mmap", offset=3, pages=1, prot=mm.PROT_READ, tasks="task % 4 == 0"),
        OpTemplate("mprotect", offset=0, pages=2, prot=mm.PROT_READ, tasks="task % 4 == 0"),
        OpTemplate("munmap", offset=2, pages=2, tasks="task % 4 == 1"),
        OpTemplate("mmap", offset=2, pages=1, tasks="task % 4 == 2", label="head"),
        OpTemplate("mmap", offset=3, pages=1, tasks="task % 4 == 2", label="tail"),
        OpTemplate("mmap", offset=0, pages=2, tasks="task % 4 == 3", label="edge"),
        OpTemplate(
            "mmap", offset=2, pages=1, prot=mm.PROT_NONE, flags=FIXED, tasks="task % 4 == 3"
        ),
    ),
    grades=(
        Grade(
            FORBIDDEN,
            "edge_winners > 0",
            "a probe of [0, 2) won although those pages stayed mapped: it clobbered the mapping",
        ),
        Grade(
            FORBIDDEN,
            "enomem + head_enomem + tail_enomem + fixed_enomem > 0",
            "an mmap failed with ENOMEM: its mapping was taken away before the call finished "
            "(a call split over two critical sections)",
        ),
        Grade(
            FORBIDDEN,
            "head_winners > munmap_calls",
            "page 2 was won more often than munmaps freed it: a probe clobbered a mapping",
        ),
        Grade(
            FORBIDDEN,
            "winners + tail_winners > munmap_calls",
            "page 3 was won more often than munmaps freed it: a probe clobbered a mapping",
        ),
        Grade(
            FORBIDDEN,
            "fixed_winners < fixed_calls or munmap_ok < munmap_calls"
            " or mprotect_ok < mprotect_calls",
            "a MAP_FIXED, an munmap or an mprotect of a range that stays mapped failed",
        ),
        Grade(
            INTERESTING,
            f"head_winners > 0 and {_MIXED_OK}",
            "a probe won page 2 in the gap an munmap left",
        ),
        Grade(ACCEPTABLE, _MIXED_OK, "every call saw one state of the address space"),
    ),
    shuffle=True,
)

CATALOG: tuple[Workload, ...] = (
    SAME_PAGE,
    SAME_RANGE,
    PARTIAL_OVERLAP,
    ADJACENT,
    CHAIN,
    CHURN,
    HINT_VS_FIXED,
    ZERO_PAGE,
    MANY_RANGES,
    MPROTECT_RACE,
    BOUNDARY,
    TOP,
    MIXED,
)
DEFAULT = SAME_PAGE.name
