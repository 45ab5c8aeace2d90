"""The machine parameters the address-space rules depend on, and how to read them off this host."""

from __future__ import annotations

import gzip
import os
import platform
import sys
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
        lsm = _lsm_min_addr(ref.lsm_mmap_min_addr, dac)
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


def _lsm_min_addr(default: int, dac: int) -> int:
    """CONFIG_LSM_MMAP_MIN_ADDR, found in this order:

    1. the kernel config, /boot/config-$(uname -r) or /proc/config.gz;
    2. on Linux, a probe (`mm.kernel.probe_mmap_min_addr`): a non-fixed one-page mmap hinted at
       0x1000 lands at PAGE_ALIGN(max(dac, lsm)) when that page is free; only the maximum
       matters to the rules, so the probed value stands in for the LSM floor;
    3. the reference value.
    """
    for path in (Path(f"/boot/config-{platform.release()}"), Path("/proc/config.gz")):
        try:
            data = path.read_bytes()
            text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode()
        except (OSError, ValueError, EOFError):
            continue
        for line in text.splitlines():
            if line.startswith("CONFIG_LSM_MMAP_MIN_ADDR="):
                try:
                    return int(line.split("=", 1)[1], 0)
                except ValueError:
                    break
    if sys.platform.startswith("linux"):
        from mm._syscalls import probe_mmap_min_addr

        try:
            probed = probe_mmap_min_addr()
        except OSError:
            probed = None
        if probed is not None and probed >= dac:
            return probed
    return default


def has_cap_sys_rawio(status: str = "/proc/self/status") -> bool:
    """Does this process hold CAP_SYS_RAWIO in its effective set? (False when unknowable.)

    `status` is the /proc status file to read: the process's (the main thread's), or
    /proc/thread-self/status for the calling thread's own capabilities.
    """
    try:
        for line in Path(status).read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_RAWIO & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False
