"""Constants of the Linux x86-64 mmap ABI, and how results, protections and flags are printed.

Results use the raw system-call convention: a non-negative address (mmap) or 0 (munmap,
mprotect) on success, ``-errno`` on failure.
"""

from __future__ import annotations

import errno as _errno

PROT_NONE = 0x0
PROT_READ = 0x1
PROT_WRITE = 0x2
PROT_EXEC = 0x4
PROT_SEM = 0x8

MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_SHARED_VALIDATE = 0x03
MAP_TYPE = 0x0F
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_GROWSDOWN = 0x100
MAP_DENYWRITE = 0x800
MAP_EXECUTABLE = 0x1000
MAP_LOCKED = 0x2000
MAP_NORESERVE = 0x4000
MAP_POPULATE = 0x8000
MAP_NONBLOCK = 0x10000
MAP_STACK = 0x20000
MAP_HUGETLB = 0x40000
MAP_SYNC = 0x80000
MAP_FIXED_NOREPLACE = 0x100000

MAP_UNINITIALIZED = 0x4000000

# Flags that MAP_SHARED_VALIDATE accepts on a file (LEGACY_MAP_MASK in the kernel).
LEGACY_MAP_MASK = (
    MAP_SHARED
    | MAP_PRIVATE
    | MAP_FIXED
    | MAP_ANONYMOUS
    | MAP_DENYWRITE
    | MAP_EXECUTABLE
    | MAP_UNINITIALIZED
    | MAP_GROWSDOWN
    | MAP_LOCKED
    | MAP_NORESERVE
    | MAP_POPULATE
    | MAP_NONBLOCK
    | MAP_STACK
    | MAP_HUGETLB
)

PROT_NAMES: dict[str, int] = {
    "NONE": PROT_NONE,
    "READ": PROT_READ,
    "WRITE": PROT_WRITE,
    "EXEC": PROT_EXEC,
    "SEM": PROT_SEM,
}

MAP_NAMES: dict[str, int] = {
    "SHARED": MAP_SHARED,
    "PRIVATE": MAP_PRIVATE,
    "SHARED_VALIDATE": MAP_SHARED_VALIDATE,
    "FIXED": MAP_FIXED,
    "ANONYMOUS": MAP_ANONYMOUS,
    "ANON": MAP_ANONYMOUS,
    "GROWSDOWN": MAP_GROWSDOWN,
    "DENYWRITE": MAP_DENYWRITE,
    "EXECUTABLE": MAP_EXECUTABLE,
    "LOCKED": MAP_LOCKED,
    "NORESERVE": MAP_NORESERVE,
    "POPULATE": MAP_POPULATE,
    "NONBLOCK": MAP_NONBLOCK,
    "STACK": MAP_STACK,
    "HUGETLB": MAP_HUGETLB,
    "SYNC": MAP_SYNC,
    "FIXED_NOREPLACE": MAP_FIXED_NOREPLACE,
}

# Order in which flags are printed (the type first, then the rest by value).
_FLAG_PRINT_ORDER = [
    ("FIXED_NOREPLACE", MAP_FIXED_NOREPLACE),
    ("FIXED", MAP_FIXED),
    ("ANONYMOUS", MAP_ANONYMOUS),
    ("GROWSDOWN", MAP_GROWSDOWN),
    ("DENYWRITE", MAP_DENYWRITE),
    ("EXECUTABLE", MAP_EXECUTABLE),
    ("LOCKED", MAP_LOCKED),
    ("NORESERVE", MAP_NORESERVE),
    ("POPULATE", MAP_POPULATE),
    ("NONBLOCK", MAP_NONBLOCK),
    ("STACK", MAP_STACK),
    ("HUGETLB", MAP_HUGETLB),
    ("SYNC", MAP_SYNC),
]


def errno_name(code: int) -> str:
    """`EEXIST` for 17 (or -17); `E123` for a number Python does not know."""
    return _errno.errorcode.get(abs(code), f"E{abs(code)}")


def errno_value(name: str) -> int:
    """17 for `EEXIST`; raises ValueError for an unknown name."""
    value = getattr(_errno, name.upper(), None)
    if not isinstance(value, int):
        raise ValueError(f"unknown errno name {name!r}")
    return value


def format_result(kind: str, result: int | None) -> str:
    """`0x100000000000` for an mmap address, `0` for munmap/mprotect success, `EEXIST` on error."""
    if result is None:
        return "pending"
    if result < 0:
        return errno_name(result)
    if kind == "mmap":
        return hex(result)
    return str(result)


def parse_result(kind: str, text: str) -> int:
    """Inverse of `format_result`: `0x1000` -> 4096, `EEXIST` -> -17, `0` -> 0."""
    text = text.strip()
    if text[:1].isalpha() and text.upper().startswith("E"):
        return -errno_value(text)
    return int(text, 0)


def _parse_names(text: str, names: dict[str, int], what: str, prefix: str) -> int:
    value = 0
    for part in text.split("|"):
        part = part.strip()
        if not part:
            raise ValueError(f"empty {what} name in {text!r}")
        upper = part.upper()
        if upper.startswith(prefix):
            upper = upper[len(prefix) :]
        if upper in names:
            value |= names[upper]
            continue
        try:
            value |= int(part, 0)
        except ValueError:
            known = ", ".join(sorted(names))
            raise ValueError(f"unknown {what} {part!r} (known: {known})") from None
    return value


def parse_prot(text: str) -> int:
    """`READ|WRITE` (or `PROT_READ|PROT_WRITE`, or a number) -> 3."""
    return _parse_names(text, PROT_NAMES, "protection", "PROT_")


def parse_flags(text: str) -> int:
    """`PRIVATE|ANONYMOUS|FIXED_NOREPLACE` (or `MAP_...`, or a number) -> 0x100022."""
    return _parse_names(text, MAP_NAMES, "flag", "MAP_")


def format_prot(prot: int) -> str:
    """3 -> `READ|WRITE`; 0 -> `NONE`; unknown bits are printed as a hex number."""
    if prot == 0:
        return "NONE"
    parts = []
    rest = prot
    for name in ("READ", "WRITE", "EXEC", "SEM"):
        bit = PROT_NAMES[name]
        if rest & bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)


def format_flags(flags: int) -> str:
    """0x100022 -> `PRIVATE|ANONYMOUS|FIXED_NOREPLACE` (type first)."""
    parts = []
    kind = flags & MAP_TYPE
    rest = flags & ~MAP_TYPE
    type_names = {
        MAP_SHARED: "SHARED",
        MAP_PRIVATE: "PRIVATE",
        MAP_SHARED_VALIDATE: "SHARED_VALIDATE",
    }
    if kind in type_names:
        parts.append(type_names[kind])
    elif kind:
        parts.append(hex(kind))
    for name, bit in sorted(_FLAG_PRINT_ORDER, key=lambda item: item[1]):
        if rest & bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts) if parts else "0"
