"""The one record of a call that happened, and the history's header.

`Operation` is what a target hands back, what the history file holds one line of, what grading
and the checker read: who (task, round), what (`op`, an `mm.Op`), the raw result and when.
"""

from __future__ import annotations

import platform
from typing import Any

import attrs

from mm import Op

FORMAT_VERSION = 1
FORMAT_KEY = "mmrace_history"
KINDS = ("mmap", "munmap", "mprotect")
U64 = 1 << 64
# Raw results: an address/0 on success or -errno (the kernel's errno range is 1..4095).
MIN_RESULT = -4095


@attrs.frozen(slots=True)
class Operation:
    """One recorded call: who (task, round), what (`op`), the raw result, and when.

    ``result`` is the raw system-call result (address or 0, or ``-errno``); None when the call
    got no response (pending), in which case ``ret`` is None too. ``call`` is a monotonic
    nanosecond time taken just before the call, ``ret`` one taken just after it returned.
    """

    task: int
    op: Op
    result: int | None
    call: int
    ret: int | None
    round: int = 0

    @property
    def pending(self) -> bool:
        return self.ret is None


@attrs.frozen
class Header:
    """The first line: what produced the history and the model parameters to judge it by."""

    target: str
    workload: str = ""
    seed: int | None = None
    params: dict[str, Any] = attrs.field(factory=dict)
    kernel: str = ""
    privileged: bool | None = None
    arena: dict[str, int] | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)
    tool: str = ""
    version: int = FORMAT_VERSION

    @classmethod
    def create(cls, target: str, **fields: Any) -> Header:
        """A header for a new run: tool version and host kernel filled in."""
        from stress import __version__

        fields.setdefault("kernel", host_kernel())
        return cls(target=target, tool=__version__, **fields)

    def to_json(self) -> dict[str, Any]:
        return {
            FORMAT_KEY: self.version,
            "tool": self.tool,
            "target": self.target,
            "workload": self.workload,
            "seed": self.seed,
            "params": self.params,
            "kernel": self.kernel,
            "privileged": self.privileged,
            "arena": self.arena,
            "extra": self.extra,
        }


def host_kernel() -> str:
    """`uname -srvm` of this machine, e.g. `Linux 6.8.0-45-generic #45 x86_64`."""
    u = platform.uname()
    return f"{u.system} {u.release} {u.version} {u.machine}"
