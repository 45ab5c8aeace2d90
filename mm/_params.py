"""The machine parameters the address-space rules depend on (pure values; `mm.kernel.host_params`
reads them off this host)."""

from __future__ import annotations

import attrs

PAGE_4K = 4096
# x86-64 with 4-level paging: TASK_SIZE = 2^47 - one page.
TASK_SIZE_X86_64 = (1 << 47) - PAGE_4K
_MAX_PAGE = 1 << 30


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
        """Parameters read from a file: checked by `validated` (a ValueError names the key)."""
        return cls.validated(**data)

    @classmethod
    def validated(cls, **fields: object) -> Params:
        """Parameters from outside (a history header, run.json, ``--model-param``): every
        value is checked, and a ValueError("key: problem") names the first bad one. The one
        rule for every entry point, so that a page size of 0 can never judge a history."""
        known = {f.name for f in attrs.fields(cls)}
        unknown = set(fields) - known
        if unknown:
            raise ValueError(f"unknown model parameter(s): {', '.join(sorted(unknown))}")
        values = {**attrs.asdict(cls()), **fields}
        for key, value in values.items():
            if key == "privileged":
                if not isinstance(value, bool):
                    raise ValueError(f"privileged: must be true or false, not {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{key}: must be an integer, not {value!r}")
        page, task_size = values["page_size"], values["task_size"]
        assert isinstance(page, int) and isinstance(task_size, int)
        if page < PAGE_4K or page > _MAX_PAGE or page & (page - 1):
            raise ValueError(f"page_size: must be a power of two from 4096 to 2^30, got {page}")
        if not 0 < task_size < 1 << 64 or task_size % page:
            raise ValueError(
                f"task_size: must be a positive multiple of page_size below 2^64, got {task_size}"
            )
        for key, low in (
            ("dac_mmap_min_addr", 0),
            ("lsm_mmap_min_addr", 0),
            ("mmap_base", 1),
        ):
            v = values[key]
            assert isinstance(v, int)
            if not low <= v <= task_size:
                raise ValueError(f"{key}: must be from {low} to task_size ({task_size}), got {v}")
        count = values["max_map_count"]
        assert isinstance(count, int)
        if not 1 <= count < 1 << 31:
            raise ValueError(f"max_map_count: must be from 1 to 2^31 - 1, got {count}")
        return cls(**values)
