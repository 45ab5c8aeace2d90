"""Workloads that `mmrace mutants` adds to the catalog, for bugs no catalog workload can show.

Written as TOML text (the user workload format), so a run directory can name them by path and
`mmrace replay` rebuilds them. Each says which bug it exists for; `PARAMS` holds the model
parameters a workload needs (a model target only; the kernel's cannot be changed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import workloads

SPLIT_MUNMAP = '''
name = "split-munmap"
summary = """Setup maps two neighbouring pages with different protections (two mappings); tasks \
race an munmap of both against probes of the two pages, in both orders. The munmap removes both \
pages at once: a task whose first probe won a freed page must not find the other page still \
mapped afterwards (found by the checker: an munmap torn between its two parts)."""
shuffle = true

[[setup]]
kind = "mmap"
offset = 0
pages = 1
prot = "READ"
flags = "PRIVATE|ANONYMOUS|FIXED"

[[setup]]
kind = "mmap"
offset = 1
pages = 1
prot = "READ|WRITE"
flags = "PRIVATE|ANONYMOUS|FIXED"

[[race]]
kind = "munmap"
offset = 0
pages = 2
tasks = "task % 3 == 0"

[[race]]
kind = "mmap"
offset = 0
tasks = "task % 3 == 1"
label = "head"

[[race]]
kind = "mmap"
offset = 1
tasks = "task % 3 != 0"
label = "tail"

[[race]]
kind = "mmap"
offset = 0
tasks = "task % 3 == 2"
label = "head"

[[grades]]
verdict = "FORBIDDEN"
when = "munmap_ok < munmap_calls"
description = "an munmap failed"

[[grades]]
verdict = "ACCEPTABLE"
when = "head_winners + head_eexist == head_calls and tail_winners + tail_eexist == tail_calls"
description = "each probe won a freed page or found it mapped"
'''

LOW_OVERLAP = '''
name = "low-overlap"
summary = """Setup maps the page at vm.mmap_min_addr; tasks probe the two pages [0, 2 pages), \
which overlap it but start below vm.mmap_min_addr. Without CAP_SYS_RAWIO every probe must fail \
with EPERM (the permission check comes before the overlap test); with it, EEXIST."""

[[setup]]
kind = "mmap"
anchor = "min_addr"
offset = 0
pages = 1
flags = "PRIVATE|ANONYMOUS|FIXED"

[[race]]
kind = "mmap"
anchor = "zero"
offset = 0
pages = 2
label = "low"

[[grades]]
verdict = "FORBIDDEN"
when = "not privileged and low_eexist > 0"
description = "EEXIST for a probe the permission check refuses: the overlap was tested first"

[[grades]]
verdict = "ACCEPTABLE"
when = "not privileged and low_eperm == low_calls"
description = "unprivileged: every probe below vm.mmap_min_addr got EPERM"

[[grades]]
verdict = "ACCEPTABLE"
when = "privileged and low_eexist == low_calls"
description = "privileged: every probe found the mapped page (EEXIST)"
'''

MPROTECT_HOLE = '''
name = "mprotect-hole"
summary = """Setup maps pages 0 and 2 (a hole at page 1); task 0 mprotects [0, 3) to READ (ENOMEM \
at the hole, page 0 changed), probes page 1 with READ (merging with page 0 only if page 0 was \
changed) and probes page 4. With vm.max_map_count = 2 the last probe succeeds only if the \
mapping count shows the mprotect prefix stayed changed (spec mprotect rule 7)."""

[[setup]]
kind = "mmap"
offset = 0
flags = "PRIVATE|ANONYMOUS|FIXED"

[[setup]]
kind = "mmap"
offset = 2
flags = "PRIVATE|ANONYMOUS|FIXED"

[[race]]
kind = "mprotect"
offset = 0
pages = 3
prot = "READ"
tasks = "task == 0"

[[race]]
kind = "mmap"
offset = 1
prot = "READ"
tasks = "task == 0"
label = "bridge"

[[race]]
kind = "mmap"
offset = 4
tasks = "task == 0"
label = "far"

[[grades]]
verdict = "FORBIDDEN"
when = "far_enomem > 0"
description = "one mapping too many: the failed mprotect left page 0 unchanged"

[[grades]]
verdict = "ACCEPTABLE"
when = "mprotect_enomem == mprotect_calls and bridge_winners == 1 and far_winners == 1"
description = "the mprotect prefix stayed changed and the bridge merged with it"
'''

TEXTS = {"split-munmap": SPLIT_MUNMAP, "low-overlap": LOW_OVERLAP, "mprotect-hole": MPROTECT_HOLE}
PARAMS: dict[str, dict[str, Any]] = {"mprotect-hole": {"max_map_count": 2}}
MODEL_ONLY = frozenset(PARAMS)


def write(name: str, directory: Path) -> Path:
    """Write workload `name` as DIR/name.toml and return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    path.write_text(TEXTS[name].lstrip(), encoding="utf-8")
    return path


def load(name: str, directory: Path) -> tuple[workloads.Workload, str]:
    """The workload and the reference to record (a catalog name, or the TOML path written)."""
    if name in TEXTS:
        path = write(name, directory)
        return workloads.load_toml(path), str(path)
    return workloads.get(name), name
