"""Sequential operation scripts: one mmap/munmap/mprotect call per line (for `mmrace exec`).

    # comment
    mmap     ADDR LEN PROT FLAGS [off=OFFSET]
    munmap   ADDR LEN
    mprotect ADDR LEN PROT

Numbers are decimal or 0x-hex; a number may be an expression of terms joined by `+` and `-`,
where a term is a number, `B` (the arena base), `P` (the page size) or `T` (TASK_SIZE),
optionally multiplied: `B+3P`, `B-P`, `T-2*P`, `-P` (values wrap modulo 2^64 like C's unsigned
arithmetic). PROT and FLAGS are names joined by `|` (`READ|WRITE`, `NONE`,
`PRIVATE|ANONYMOUS|FIXED_NOREPLACE`, an optional `PROT_`/`MAP_` prefix) or numbers; `NR`
abbreviates PRIVATE|ANONYMOUS|FIXED_NOREPLACE. Mistakes raise `UsageError("FILE:LINE: problem")`.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

import mm
from stress.errors import UsageError

FAR_BASE = 0x100000000000
TASK_SIZE = (1 << 47) - 4096
U64 = (1 << 64) - 1
_ARITY = {"mmap": 4, "munmap": 2, "mprotect": 3}
_TERM = re.compile(r"^(?:(0x[0-9a-fA-F]+|\d+)\s*\*?\s*)?([BPT])$")


@attrs.frozen
class ScriptOp:
    """One parsed line: where it came from and the call it asks for."""

    line: int
    text: str
    op: mm.Op


@attrs.frozen
class Script:
    source: str
    base: int
    page_size: int
    ops: tuple[ScriptOp, ...]


def parse_value(text: str, *, base: int, page_size: int = 4096) -> int:
    """`B+0x1000` -> base + 4096; raises ValueError with a short reason."""
    expr = text.replace(" ", "")
    if not expr:
        raise ValueError("empty number")
    symbols = {"B": base, "P": page_size, "T": TASK_SIZE}
    total = 0
    for sign, term in re.findall(r"([+-]?)([^+-]*)", expr):
        if not sign and not term:
            continue
        if not term:
            raise ValueError(f"bad number {text!r}")
        try:
            value = int(term, 0)
        except ValueError:
            match = _TERM.match(term)
            if match is None:
                raise ValueError(
                    f"bad number {text!r} (use decimal, 0x-hex, B, P, T, e.g. B+2P)"
                ) from None
            factor = int(match.group(1), 0) if match.group(1) else 1
            value = factor * symbols[match.group(2)]
        if value > U64:
            raise ValueError(f"number {term!r} is above 2^64 - 1 in {text!r}")
        total = total - value if sign == "-" else total + value
    return total & U64


def _parse_flags(text: str) -> int:
    parts = [p.strip() for p in text.split("|")]
    value = 0
    rest = []
    for part in parts:
        if part.upper() == "NR":
            value |= mm.NR
        else:
            rest.append(part)
    return value | (mm.parse_flags("|".join(rest)) if rest else 0)


def parse_line(text: str, *, base: int, page_size: int = 4096) -> mm.Op | None:
    """One line -> an `mm.Op`, or None for a blank/comment line; ValueError on a mistake."""
    code = text.split("#", 1)[0].strip()
    if not code:
        return None
    words = code.split()
    kind = words[0].lower()
    if kind not in _ARITY:
        raise ValueError(f"unknown operation {words[0]!r} (mmap, munmap, mprotect)")
    args = words[1:]
    offset = 0
    if kind == "mmap" and args and args[-1].lower().startswith("off="):
        offset = parse_value(args.pop()[4:], base=base, page_size=page_size)
    if len(args) != _ARITY[kind]:
        usage = {
            "mmap": "mmap ADDR LEN PROT FLAGS [off=OFFSET]",
            "munmap": "munmap ADDR LEN",
            "mprotect": "mprotect ADDR LEN PROT",
        }[kind]
        raise ValueError(f"{kind} takes {_ARITY[kind]} arguments, got {len(args)} ({usage})")
    addr = parse_value(args[0], base=base, page_size=page_size)
    length = parse_value(args[1], base=base, page_size=page_size)
    if kind == "munmap":
        return mm.Op.munmap(addr, length)
    prot = mm.parse_prot(args[2])
    if kind == "mprotect":
        return mm.Op.mprotect(addr, length, prot)
    return mm.Op.mmap(addr, length, prot, _parse_flags(args[3]), offset=offset)


def parse_script(
    text: str, *, source: str = "<script>", base: int = FAR_BASE, page_size: int = 4096
) -> Script:
    """Parse a whole script; the first mistake raises `UsageError("SOURCE:LINE: problem")`."""
    ops = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            op = parse_line(line, base=base, page_size=page_size)
        except ValueError as exc:
            raise UsageError(f"{source}:{number}: {exc}") from None
        if op is not None:
            ops.append(ScriptOp(number, line.split("#", 1)[0].strip(), op))
    if not ops:
        raise UsageError(f"{source}: no operations in the script")
    return Script(source, base, page_size, tuple(ops))


def load_script(path: str | Path, *, base: int = FAR_BASE, page_size: int = 4096) -> Script:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the script: {exc}") from None
    return parse_script(text, source=str(path), base=base, page_size=page_size)
