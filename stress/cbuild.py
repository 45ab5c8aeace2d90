"""Building C shipped in the package: compiled on first use into a per-user cache.

`compile_cached(source, out_name, flags)` compiles one C file with the system compiler (`$CC`,
else the first of `COMPILERS` on PATH; `static` builds try `STATIC_COMPILERS` first) into
$XDG_CACHE_HOME/mmrace/<hash>/out_name (default ~/.cache). The hash covers the source, the
files of its folder and of ``include`` (``*.c``, ``*.h``), the compiler's path and version and
the flags, so a changed source or compiler builds afresh and anything else reuses the file.
No compiler, or a failed build: `NativeUnavailable` with a one-line reason (callers fall back
to their Python path and say so). Users: the native racer and agent (`stress.harness`), the
checker's fast scan (`stress.checker`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

COMPILERS = ("cc", "gcc")
STATIC_COMPILERS = ("musl-gcc",)
BUILDS: list[Path] = []  # every file this process compiled (tests look)
_lock = threading.Lock()


class NativeUnavailable(RuntimeError):
    """C code cannot be built or loaded here (the message says why, in one line)."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mmrace"


def find_compiler(static: bool = False) -> str:
    """The C compiler's path: $CC, else the first of `COMPILERS` (for static builds
    `STATIC_COMPILERS` first) found on PATH; NativeUnavailable when there is none."""
    names = [os.environ["CC"]] if os.environ.get("CC") else []
    names += [*(STATIC_COMPILERS if static else ()), *COMPILERS]
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise NativeUnavailable(f"no C compiler found (tried {', '.join(names)})")


def compile_cached(
    source: Path,
    out_name: str,
    flags: Sequence[str],
    *,
    compiler: str | None = None,
    include: Sequence[Path] = (),
    what: str = "native code",
) -> Path:
    """The built ``out_name`` for ``source`` (see the module docstring), compiled unless
    cached; ``what`` names it in errors."""
    compiler = compiler or find_compiler()
    digest = hashlib.sha256()
    folders = {source.parent, *include}
    files = {source, *(p for folder in folders for p in folder.glob("*.[ch]"))}
    for path in sorted(files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(compiler.encode() + b"\0" + " ".join(flags).encode() + b"\0")
    digest.update(_version(compiler))
    folder = cache_root() / digest.hexdigest()[:16]
    out = folder / out_name
    with _lock:
        if out.exists():
            return out
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{out.name}.")
            os.close(fd)
            done = subprocess.run(
                [compiler, *flags, "-o", tmp, str(source)],
                capture_output=True,
                timeout=300,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise NativeUnavailable(f"cannot build the {what}: {exc}") from None
        if done.returncode != 0:
            Path(tmp).unlink(missing_ok=True)
            lines = done.stderr.decode(errors="replace").strip().splitlines()
            why = next((ln for ln in lines if "error" in ln), lines[-1] if lines else "")
            raise NativeUnavailable(f"{Path(compiler).name} failed on {source.name}: {why[:200]}")
        os.replace(tmp, out)
        BUILDS.append(out)
        return out


def _version(compiler: str) -> bytes:
    try:
        done = subprocess.run([compiler, "--version"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return b""
    return done.stdout
