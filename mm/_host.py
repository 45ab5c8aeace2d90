"""This host's machine parameters and privilege: sysctls, the kernel config, capabilities.

Read beside the kernel binding (`mm.kernel` re-exports these) so that the model itself stays
pure: `mm.Params` is a plain value, and only this module looks at the running system.
"""

from __future__ import annotations

import gzip
import os
import platform
import sys
from pathlib import Path

from mm._params import Params

CAP_SYS_RAWIO = 17


def host_params(*, privileged: bool | None = None) -> Params:
    """Read this machine's sysctls and capability so the model mirrors the host.

    Falls back to the reference values for anything that cannot be read (e.g. not Linux).
    `privileged=None` means: does this process hold CAP_SYS_RAWIO?
    """
    ref = Params.reference()
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else ref.page_size
    dac = _read_int("/proc/sys/vm/mmap_min_addr", ref.dac_mmap_min_addr)
    maxmap = _read_int("/proc/sys/vm/max_map_count", ref.max_map_count)
    lsm = _lsm_min_addr(ref.lsm_mmap_min_addr, dac)
    if privileged is None:
        privileged = has_cap_sys_rawio()
    return Params(
        page_size=page,
        task_size=ref.task_size,
        dac_mmap_min_addr=dac,
        lsm_mmap_min_addr=lsm,
        max_map_count=maxmap,
        mmap_base=ref.mmap_base,
        privileged=privileged,
    )


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
        from mm._syscalls import probe_mmap_min_addr  # ctypes: Linux only

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


def thread_has_cap_sys_rawio() -> bool:
    """Does the calling thread hold CAP_SYS_RAWIO? (/proc/self/status shows the main thread's.)"""
    return has_cap_sys_rawio("/proc/thread-self/status")
