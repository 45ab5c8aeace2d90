"""The machine parameters the address-space rules depend on (pure values; `mm.kernel.host_params`
reads them off this host)."""

from __future__ import annotations

import attrs

PAGE_4K = 4096
# x86-64 with 4-level paging: TASK_SIZE = 2^47 - one page.
TASK_SIZE_X86_64 = (1 << 47) - PAGE_4K


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

    def to_json(self) -> dict[str, int | bool]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Params:
        fields = {f.name for f in attrs.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown model parameter(s): {', '.join(sorted(unknown))}")
        return cls(**data)  # type: ignore[arg-type]
