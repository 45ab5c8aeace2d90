"""The machine parameters the address-space rules depend on, and how to read them off this host."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import attrs

PAGE_4K = 4096
# x86-64 with 4-level paging: TASK_SIZE = 2^47 - one page.
TASK_SIZE_X86_64 = (1 << 47) - PAGE_4K
CAP_SYS_RAWIO = 17


@attrs.frozen
class Params:
    """Everything besides the mappings themselves that decides a call's result.

    `dac_mmap_min_addr` is the sysctl vm.mmap_min_addr: fixed mappings below it need
    CAP_SYS_RAWIO (`privileged`). `lsm_mmap_min_addr` is CONFIG_LSM_MMAP_MIN_ADDR; the larger of
    the two (`mmap_min_addr`) is the floor for hint rounding and for the free-range search.
    `mmap_base` is where the deterministic top-down placement starts looking.
    """

    page_size: int = PAGE_4K
    task_size: int = TASK_SIZE_X86_64
    dac_mmap_min_addr: int = 4096
    lsm_mmap_min_addr: int = 65536
    max_map_count: int = 65530
    mmap_base: int = 0x7F0000000000
    privileged: bool = True

    @property
    def mmap_min_addr(self) -> int:
        return max(self.dac_mmap_min_addr, self.lsm_mmap_min_addr)

    @classmethod
    def reference(cls, *, privileged: bool = True) -> Params:
        """The machine of the spec page: x86-64, 4 KiB pages, 4096 / 65536 minimum addresses."""
        return cls(privileged=privileged)

    @classmethod
    def from_host(cls, *, privileged: bool | None = None) -> Params:
        """Read this machine's sysctls and capability so the model mirrors the host.

        Falls back to the reference values for anything that cannot be read (e.g. not Linux).
        `privileged=None` means: does this process hold CAP_SYS_RAWIO?
        """
        ref = cls.reference()
        page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else ref.page_size
        dac = _read_int("/proc/sys/vm/mmap_min_addr", ref.dac_mmap_min_addr)
        maxmap = _read_int("/proc/sys/vm/max_map_count", ref.max_map_count)
        lsm = _lsm_min_addr(ref.lsm_mmap_min_addr)
        if privileged is None:
            privileged = has_cap_sys_rawio()
        return cls(
            page_size=page,
            task_size=ref.task_size,
            dac_mmap_min_addr=dac,
            lsm_mmap_min_addr=lsm,
            max_map_count=maxmap,
            mmap_base=ref.mmap_base,
            privileged=privileged,
        )

    def to_json(self) -> dict[str, int | bool]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Params:
        fields = {f.name for f in attrs.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown model parameter(s): {', '.join(sorted(unknown))}")
        return cls(**data)  # type: ignore[arg-type]


def _read_int(path: str, default: int) -> int:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def _lsm_min_addr(default: int) -> int:
    """CONFIG_LSM_MMAP_MIN_ADDR from the running kernel's config, when it is readable."""
    candidates = [Path(f"/boot/config-{platform.release()}")]
    for path in candidates:
        try:
            for line in path.read_text().splitlines():
                if line.startswith("CONFIG_LSM_MMAP_MIN_ADDR="):
                    return int(line.split("=", 1)[1], 0)
        except (OSError, ValueError):
            continue
    return default


def has_cap_sys_rawio() -> bool:
    """Does this process hold CAP_SYS_RAWIO in its effective set? (False when unknowable.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_RAWIO & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False
