"""Output places checked before any work: an unwritable one is one line and exit 2."""

from __future__ import annotations

from pathlib import Path

from stress.errors import UsageError


def make_out_dir(out: Path, flag: str = "--out") -> None:
    """Create the output directory now, so that an unwritable place is one line, not a
    traceback at the end of a run."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {out}: not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".mmrace-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{flag} {out}: cannot write there: {exc.strerror or exc}") from None


def check_out_file(path: Path, flag: str) -> None:
    """A file to be written later (a report, JUnit XML): its directory must exist and take it."""
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a directory (give a file name)")
    existed = path.exists()
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write there: {exc.strerror or exc}") from None
    if not existed:
        path.unlink(missing_ok=True)
