"""The kernel target: N OS threads race the real Linux kernel through `mm.kernel`.

Every call goes through a `mm.kernel.KernelSpace` fenced into arenas: the workload's space
(reserved far from the interpreter, 0x100000000000 by default, and verified free in
/proc/self/maps) plus any region the workload declares outside it (`declare_regions`, e.g. page
0), each verified free before use. A fixed call outside every arena is never issued.

Engines (`TargetOptions.engine`, `--engine`): "native" (the default of the command line) races
with the C racer (`_native.NativeRacer`: pthreads released by a futex gate, stamps and raw
system calls in C, one ctypes call per round, the GIL released for all of it; `run_rounds`:
many rounds per call, each race followed by its cleanup and footprint check in C, for rounds
without setup and without hints, so the racer's threads stay awake); when it cannot be
built (no C compiler) a one-line note says so and the Python engine runs instead. "python":
the threads come from a `stress.agent._worker.WorkerPool`, created once and released together
each round by its start gate; ctypes drops the GIL during each system call, so the calls can
overlap in the kernel. Either way the records are the same `Operation` values.
A native race that has not finished `timeout` seconds after its release (a call that never
returns) is recorded with that call pending, reported as a problem (the run is UNKNOWN) and
ends the run (`dead`): the stuck racer is never reused.

Interference: before every race (batches: before and after each batch, the findings going to
the batch's first and last round) the target checks that nothing it did not create is mapped in
its arenas. "Created" is the union of the page ranges its own successful mmap calls returned
(from the records). Where the kernel has PROCMAP_QUERY (Linux 6.11+; `_vmaquery`), the
mappings present in each arena are walked, one ioctl each (after a cleanup usually a single
ioctl, about 1.5 µs), and looked up in that union; otherwise each gap of the union is probed
with one MAP_FIXED_NOREPLACE PROT_NONE mapping removed at once (10-25 µs), and past
PROBE_LIMIT gaps /proc/self/maps is read instead (most of a millisecond). When something
looks foreign, the maps file names the intruder. Findings go to `RaceOutcome.problems` (the
run is then UNKNOWN).

Content oracle: a serial mmap (setup) that leaves pages mapped READ|WRITE inside an arena gets
sentinel bytes written into each of those pages (up to SENTINEL_PAGES per round; 16 bytes at the
start of the page, naming the page and the round); after that round's race they are read back,
and a page found all zero ("zeroed"), holding other bytes ("replaced") or no longer mapped
("unmapped") is reported in `RaceOutcome.content` (grading decides whether a race call explains
it). A page is written or read only after the maps (PROCMAP_QUERY, else /proc/self/maps) say it
is mapped with the needed protection, so a target that lies about its mappings cannot make the
oracle fault; a page mapped without PROT_READ after the race is skipped.

Speed (a 2-thread round is tens of microseconds, so per-round Python work shows): each op is
fenced once (`_bind`, cached per op value) and then issued as a bare `raw_*` call, the way
`KernelSpace.apply` would after its own check; the space's record of our mappings is updated
after the round, only for ranges not already known; the trio thread runs task 0 inline and
blocks for the round; a real trio checkpoint follows a round at most every
`CHECKPOINT_SECONDS` (a cancellation check follows every round).
"""

from __future__ import annotations

import bisect
import ctypes
import os
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import trio

import mm
from mm import kernel as k
from stress.agent import Call as WorkerCall
from stress.agent import Record, WorkerError, WorkerPool, spans_overlap
from stress.errors import UsageError
from stress.harness._fenced import FencedSpace as _FencedSpace
from stress.harness._fenced import gaps, insert_range, merge_ranges
from stress.harness._native import HUNG, MOVED, NativeRacer, NativeUnavailable, encode
from stress.harness._target import BatchRound, RaceOutcome, RoundOps, TargetOptions
from stress.harness._vmaquery import PROBE_FLAGS, Occupancy
from stress.history import Operation

if TYPE_CHECKING:
    from workloads import Space

_PROBE_FLAGS = PROBE_FLAGS
__all__ = ["KernelTarget", "gaps", "make_target", "merge_ranges", "require_linux"]
CHECKPOINT_SECONDS = 0.002  # a trio checkpoint after a round at most this often
_BOUND_CACHE = 4096  # fenced ops remembered (cleared when full)
PROBE_LIMIT = 32  # more gaps than this to probe: read /proc/self/maps instead
SENTINEL_PAGES = 64  # setup pages given sentinel bytes per round, at most
SENTINEL_SIZE = 16
RACE_TIMEOUT = 30.0  # seconds a native race may take before it counts as hung
ENGINES = ("native", "python")
BATCH_LIMIT = 512  # rounds per native batch at most (the runner sizes batches by time)
BATCH_ENV = "MMRACE_BATCH"
_RW = mm.PROT_READ | mm.PROT_WRITE


def require_linux(place: str) -> None:
    """UsageError (one line) unless this system can run the kernel binding."""
    if not sys.platform.startswith("linux"):
        raise UsageError(f"{place}: needs Linux (this system is {sys.platform})")


class KernelTarget:
    """The real kernel, raced by `tasks` reusable OS threads (see the module docstring)."""

    name = "kernel"
    clock = "ns"

    def __init__(
        self,
        options: TargetOptions | None = None,
        *,
        gate: str = "barrier",
        regions: Iterable[tuple[int, int]] = (),
        engine: str | None = None,
    ) -> None:
        require_linux("--target kernel")
        options = options if options is not None else TargetOptions(spec="kernel")
        self.engine = engine if engine is not None else options.engine
        if self.engine not in ENGINES:
            raise UsageError(f"--engine: {self.engine!r} is not one of {', '.join(ENGINES)}")
        self.timeout = options.timeout if options.timeout is not None else RACE_TIMEOUT
        self._batch = _batch_limit(options.batch)
        self.dead: str | None = None  # a native race hung: no more rounds
        self.note: str | None = None  # why the native engine is not used
        self._native: NativeRacer | None = None
        # fenced ops as the racer reads them, and whether each is a hint (a non-fixed mmap)
        self._encoded: dict[mm.Op, tuple[bytes, bool]] = {}
        self.params = options.params if options.params is not None else mm.kernel.host_params()
        self.gate = gate
        self.page = k.page_size()
        self._declared = list(regions)
        self.arenas: list[k.Arena] = []
        self.space: _FencedSpace | None = None
        self._pool: WorkerPool | None = None
        self._created: list[tuple[int, int]] = []  # pages our own mmaps returned, in arenas
        self._created_starts: list[int] = []  # their starts (bisect)
        self._gaps: dict[int, list[tuple[int, int]]] | None = None  # arena base: not created
        self._bound: dict[mm.Op, WorkerCall] = {}  # fenced ops and their raw calls
        self._known: set[tuple[int, int]] = set()  # mmap results known to be in _created
        self._occupancy = Occupancy()
        self._next_checkpoint = 0.0
        self._reported: set[str] = set()
        self._sentinels: dict[int, bytes] = {}  # page: the bytes written there (this round)
        self._sentinel_round = -1
        self.describe: dict[str, Any] = {"gate": gate, "engine": self.engine}

    def declare_regions(self, regions: Iterable[tuple[int, int]]) -> None:
        """Ranges outside the space the workload may touch (`Workload.regions`); before open."""
        self._declared.extend(regions)

    # --- lifecycle -------------------------------------------------------------------------

    async def open(self, tasks: int, space: Space) -> None:
        page = self.page
        wanted = [(space.base, space.base + space.size)]
        for lo, hi in self._declared:
            wanted.append((lo // page * page, -(-hi // page) * page))
        try:
            for lo, hi in merge_ranges(wanted):
                self.arenas.append(k.Arena.reserve(hi - lo, lo))
        except k.ArenaError as exc:
            self._release_arenas()
            raise UsageError(f"--target kernel: {exc}") from None
        except k.KernelUnavailable as exc:
            self._release_arenas()
            raise UsageError(f"--target kernel: {exc}") from None
        self.space = _FencedSpace(*self.arenas)
        self._occupancy = Occupancy.open(self.arenas[0])
        if self.engine == "native":
            try:
                self._native = NativeRacer(tasks)
                self.describe["gate"] = "futex (native)"
            except NativeUnavailable as exc:
                self.note = f"--engine native: {exc}; racing with the Python engine"
                print(f"mmrace: {self.note}", file=sys.stderr, flush=True)
                self.engine = "python"
                self.describe.update(engine="python", engine_note=self.note)
        if self._native is None:
            self._pool = self._python_pool(tasks)
        self._tasks = tasks
        self.describe.update(
            threads=tasks,
            arenas=[f"[{a.base:#x}, {a.end:#x})" for a in self.arenas],
            uname=" ".join(_uname()),
            interference_check=self._occupancy.method,
        )

    def _python_pool(self, tasks: int) -> WorkerPool:
        return WorkerPool(tasks, gate=self.gate, name="mmrace-kernel", inline=True)

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await trio.to_thread.run_sync(pool.close)
        native, self._native = self._native, None
        if native is not None:
            native.close()
        if self.space is not None:
            self.space.close()
        self._occupancy.close()
        self._release_arenas()

    def _release_arenas(self) -> None:
        for arena in self.arenas:
            arena.release()

    # --- rounds ----------------------------------------------------------------------------

    async def run_serial(self, round_index: int, ops: Sequence[mm.Op]) -> list[Operation]:
        """Setup/cleanup: a few fast system calls, issued from the trio thread itself (none
        once a race hung: its call may hold the kernel's locks)."""
        if self.dead is not None:
            return []
        [calls] = self._bind([ops])
        clock = time.monotonic_ns
        records = []
        for op, (fn, args) in zip(ops, calls):  # noqa: B905 (same length; see _records)
            call = clock()
            result = fn(*args)
            records.append(Operation(0, op, result, call, clock(), round_index))
        self._note_created(records)
        self._plant(round_index, records)
        await self._pause()
        return records

    async def run_race(self, round_index: int, plans: Sequence[Sequence[mm.Op]]) -> RaceOutcome:
        if self.dead is not None:
            return RaceOutcome([], [], False)  # reported in the round it hung
        if self._native is not None:
            encoded = self._encode(plans)
            if encoded is not None:
                return await self._race_native(round_index, plans, encoded)
        bound = self._bind(plans)
        pool = self._pool
        if pool is None:  # native engine, a round with a call it cannot make (a stray unmap)
            pool = self._pool = self._python_pool(self._tasks)
        problems = self.interference()
        try:
            # Blocking the trio thread for the round is deliberate: fenced kernel calls take
            # microseconds and cannot hang, and a cross-thread wake-up of trio costs more
            # than the whole round (see docs/targets.md).
            raw = pool.run_round(bound)
        except WorkerError as exc:  # never expected: the raw calls do not raise
            self._note_created(_records(round_index, plans, pool.last_records))  # unmapped at end
            raise UsageError(f"--target kernel: {exc}") from None
        records = _records(round_index, plans, raw)
        self._note_created(records)
        content = self._read_back(round_index)
        await self._pause()
        return RaceOutcome(records, problems, spans_overlap(raw), content)

    async def _race_native(
        self, round_index: int, plans: Sequence[Sequence[mm.Op]], encoded: list[list[bytes]]
    ) -> RaceOutcome:
        native = self._native
        assert native is not None
        problems = self.interference()
        raw, finished = native.run(encoded, self.timeout)  # blocks: see run_race's comment
        records = _records(round_index, plans, raw)
        self._note_created(records)
        if not finished:
            return RaceOutcome(records, [*problems, self._hung(round_index, plans, raw)], False)
        content = self._read_back(round_index)
        await self._pause()
        return RaceOutcome(records, problems, spans_overlap(raw), content)

    def _hung(
        self, round_index: int, plans: Sequence[Sequence[mm.Op]], raw: Sequence[Sequence[Record]]
    ) -> str:
        """The target is dead: a race of the native racer missed its deadline (the message)."""
        hung = [
            str(task)
            for task, (plan, got) in enumerate(zip(plans, raw, strict=False))
            if len(got) < len(plan) or (got and got[-1][2] is None)
        ]
        self.dead = (
            f"--target kernel: a race call did not return within {self.timeout:g} s "
            f"(task {', '.join(hung)}, round {round_index}); the run stops"
        )
        self._sentinels = {}
        return self.dead

    @property
    def batch_limit(self) -> int:
        """Rounds per `run_rounds` call at most: 0 without the native engine (or once dead)."""
        return self._batch if self._native is not None and self.dead is None else 0

    async def run_rounds(self, first_round: int, rounds: Sequence[RoundOps]) -> list[BatchRound]:
        """Several rounds in one native call (racer.c's mmr_batch; `Target.run_rounds`): each
        race, then its tail (cleanup and footprint check) on the trio thread, no Python between
        rounds. Runs the longest prefix of `rounds` that qualifies: every op one the racer can
        make (`_encode`), no hint in a race (its placement needs the runner's undo); [] when
        the first does not (or the native engine is off). The interference check runs before
        the batch (its findings go to the first round) and after it (to the last round run):
        a mapping that appears mid-batch is reported in the batch, not in a later round."""
        native = self._native
        if native is None or self.dead is not None or self._batch <= 1:
            return []
        batch = []
        for plans, serial in rounds:
            racing = self._encode(plans, fixed=True)
            serially = self._encode([serial])
            if racing is None or serially is None:
                break
            batch.append((racing, serially[0]))
        if not batch:
            return []
        before = self.interference()
        words, layout, why = native.run_batch(batch, self.timeout)  # blocks: see run_race
        out = []
        last = len(layout) - 1
        for j, (start, _lengths, _tail) in enumerate(layout):
            r = first_round + j
            plans, tail_ops = rounds[j]
            records, spans, at = _from_words(r, plans, words, start)
            self._note_created(records)
            problems = before if j == 0 else []
            if j == last and why == HUNG:
                raw = [
                    [(x.result, x.call, x.ret) for x in records if x.task == t]
                    for t in range(len(plans))
                ]
                dead = self._hung(r, plans, raw)
                out.append(BatchRound(RaceOutcome(records, [*problems, dead]), None))
                return out
            tail: list[Operation] | None = None
            if j < last or why != MOVED:
                tail, _, _ = _from_words(r, [tail_ops], words, at)
                self._note_created(tail)
            if j == last:
                problems = [*problems, *self.interference()]
            out.append(BatchRound(RaceOutcome(records, problems, spans_overlap(spans)), tail))
        await self._pause()
        return out

    def _encode(
        self, plans: Sequence[Sequence[mm.Op]], *, fixed: bool = False
    ) -> list[list[bytes]] | None:
        """The plans as the native racer reads them, each op fenced first (`_bind`); None when
        an op needs a call the racer cannot make (`KernelSpace.apply` for a stray range), or,
        with `fixed`, when an mmap is a hint. (Plans share op values: each is looked up once.)"""
        get = self._encoded.get
        seen: dict[int, tuple[bytes, bool]] = {}  # by id: the ops live as long as `plans`
        out = []
        for plan in plans:
            row = []
            for op in plan:
                got = seen.get(id(op)) or get(op)
                if got is None:
                    [[(fn, _args)]] = self._bind([[op]])
                    if fn == self.space.apply:  # type: ignore[union-attr]
                        return None  # (not remembered, as in `_bind_one`)
                    got = (encode(op), mm.is_nonfixed(op))
                    if len(self._encoded) >= _BOUND_CACHE:
                        self._encoded.clear()
                    self._encoded[op] = got
                if fixed and got[1]:
                    return None
                seen[id(op)] = got
                row.append(got[0])
            out.append(row)
        return out

    # --- content oracle --------------------------------------------------------------------

    def _plant(self, round_index: int, records: Sequence[Operation]) -> None:
        """Sentinel bytes into the pages this serial batch left mapped READ|WRITE (see the
        module docstring): a later call of the batch that touched a page takes it back."""
        if round_index != self._sentinel_round:
            self._sentinels, self._sentinel_round = {}, round_index
        wanted = self._sentinels
        if not wanted and not any(r.op.prot & _RW == _RW for r in records):
            return  # the usual cleanup batch: nothing to plant, nothing planted
        page = self.page
        fresh: dict[int, None] = {}
        for rec in records:
            if rec.result is None or rec.result < 0:
                continue
            made = mm.mapped_range(rec.op, rec.result, page)
            lo, hi = made if made is not None else mm.page_range(rec.op, page)
            for addr in [a for a in (*wanted, *fresh) if lo <= a < hi]:
                wanted.pop(addr, None)
                fresh.pop(addr, None)
            if made is not None and rec.op.prot & _RW == _RW and self._inside(lo, hi):
                room = SENTINEL_PAGES - len(wanted) - len(fresh)
                for addr in range(lo, min(hi, lo + max(room, 0) * page), page):
                    fresh[addr] = None
        if not fresh:
            return
        prot = self._protections(fresh)
        for addr in fresh:
            if prot.get(addr, 0) & _RW == _RW:
                data = b"mmrace:" + addr.to_bytes(8, "little") + bytes([round_index & 0xFF])
                ctypes.memmove(addr, data, SENTINEL_SIZE)
                wanted[addr] = data

    def _read_back(self, round_index: int) -> dict[str, Any] | None:
        """After the race: the sentinel pages read back (None when this round planted none)."""
        planted, self._sentinels = self._sentinels, {}
        if not planted or self._sentinel_round != round_index:
            return None
        prot = self._protections(planted)
        changed: list[list[int | str]] = []
        checked = 0
        for addr, data in planted.items():
            found = prot.get(addr)
            if found is None:
                changed.append([addr, "unmapped"])
                continue
            if not found & mm.PROT_READ:
                continue  # e.g. a racing mprotect to PROT_NONE: cannot look
            checked += 1
            now = ctypes.string_at(addr, SENTINEL_SIZE)
            if now != data:
                changed.append([addr, "zeroed" if not any(now) else "replaced"])
        return {"checked": checked, "changed": changed}

    def _protections(self, pages: Iterable[int]) -> dict[int, int]:
        """The protection of the mapping at each page (absent: nothing mapped there), from
        PROCMAP_QUERY, else from one read of /proc/self/maps."""
        occupancy = self._occupancy
        if occupancy.method == "procmap-query":
            try:
                out = {}
                for addr in pages:
                    found = occupancy.prot_at(addr)
                    if found is not None:
                        out[addr] = found
                return out
            except OSError:
                occupancy.close()  # from now on: the maps file
        regions = k.read_maps()
        starts = [r.start for r in regions]
        out = {}
        for addr in pages:
            i = bisect.bisect_right(starts, addr) - 1
            if i >= 0 and regions[i].end > addr:
                out[addr] = regions[i].prot
        return out

    async def _pause(self) -> None:
        """A cancellation check after every round; a real checkpoint (other trio tasks run)
        at most every CHECKPOINT_SECONDS, since one costs about as much as a 2-thread round."""
        now = time.perf_counter()
        if now >= self._next_checkpoint:
            self._next_checkpoint = now + CHECKPOINT_SECONDS
            await trio.lowlevel.checkpoint()
        else:
            await trio.lowlevel.checkpoint_if_cancelled()

    def _bind(self, plans: Iterable[Iterable[mm.Op]]) -> list[list[WorkerCall]]:
        """Each op of each plan fenced (checked to stay inside the arenas, else UsageError)
        and bound to the raw call `KernelSpace.apply` would make; remembered per op value,
        since the check depends only on the op and on arenas, never given back during a run.

        An op outside the arenas that was not declared gets a region of its own if that is
        free: the whole low window [0, 0x20000) for a low address (the page-0 cases), else the
        op's own page range. A munmap of a mapping this run's non-fixed mmap placed outside
        every arena (the runner's undo of a moved hint) goes through the space's `apply`.
        """
        space = self.space
        if space is None:
            raise RuntimeError("KernelTarget.open() first")
        if space.closed:
            raise UsageError("--target kernel: the kernel space is closed")
        get = self._bound.get
        out = []
        for plan in plans:
            calls = []
            for op in plan:
                bound = get(op)
                if bound is None:
                    bound = self._bind_one(space, op)
                calls.append(bound)
            out.append(calls)
        return out

    def _bind_one(self, space: _FencedSpace, op: mm.Op) -> WorkerCall:
        if space._stray(op):  # not remembered: the space forgets the range once unmapped
            return (space.apply, (op,))
        try:
            k.KernelSpace.check(space, op)
        except k.UnsafeCall:
            self._claim(op)
            try:
                k.KernelSpace.check(space, op)
            except k.UnsafeCall as exc:
                raise UsageError(f"--target kernel: {exc}") from None
        if op.kind == "mmap":
            bound: WorkerCall = (
                k.raw_mmap,
                (op.addr, op.length, op.prot, op.flags, op.fd, op.offset),
            )
        elif op.kind == "munmap":
            bound = (k.raw_munmap, (op.addr, op.length))
        else:
            bound = (k.raw_mprotect, (op.addr, op.length, op.prot))
        if len(self._bound) >= _BOUND_CACHE:
            self._bound.clear()
        self._bound[op] = bound
        return bound

    def _claim(self, op: mm.Op) -> None:
        assert self.space is not None
        rng = k.guarded_range(op, self.page)
        assert rng is not None
        lo, hi = (0, k.LOW_LIMIT) if rng[1] <= k.LOW_LIMIT else rng
        try:
            arena = k.Arena.reserve(hi - lo, lo)
        except k.ArenaError as exc:
            raise UsageError(
                f"workload: {op} touches [{rng[0]:#x}, {rng[1]:#x}), outside the arena "
                f"({', '.join(str(a) for a in self.arenas)}), and it cannot be claimed: {exc}"
            ) from None
        self.arenas.append(arena)
        self.space.add_arena(arena)
        self._gaps = None
        self.describe["arenas"] = [str(a) for a in self.arenas]

    def _note_created(self, records: Iterable[Operation]) -> None:
        """Add our successful mmaps' ranges to `_created` and to the space's own record (which
        `KernelSpace.apply` would have updated), skipping ranges already known inside an arena
        (the same pages round after round; `_known` remembers such results)."""
        page = self.page
        known = self._known
        for rec in records:
            result = rec.result
            if result is None or result < 0 or rec.op.kind != "mmap":
                continue
            length = rec.op.length
            if (result, length) in known:
                continue
            made = mm.mapped_range(rec.op, result, page)
            assert made is not None
            end = made[1]
            if self._covered(result, end) and self._inside(result, end):
                if len(known) >= _BOUND_CACHE:
                    known.clear()
                known.add((result, length))
                continue
            assert self.space is not None
            self.space._remember(result, length)
            self._add_created(result, end)

    def _add_created(self, lo: int, hi: int) -> None:
        insert_range(self._created, self._created_starts, lo, hi)
        self._gaps = None

    def _covered(self, lo: int, hi: int) -> bool:
        """Is [lo, hi) inside what this run created? (Merged ranges: one of them holds it.)"""
        i = bisect.bisect_right(self._created_starts, lo) - 1
        return i >= 0 and hi <= self._created[i][1]

    def _inside(self, lo: int, hi: int) -> bool:
        return any(a.base <= lo and hi <= a.end for a in self.arenas)

    # --- interference ----------------------------------------------------------------------

    def interference(self) -> list[str]:
        """Foreign mappings in the arenas (each reported once), as problem sentences."""
        found: list[k.Region] = []
        for arena in self.arenas:
            if self._suspect(arena):
                found.extend(self._foreign(arena))  # name the intruder from the maps file
        if not found:
            return []
        problems = []
        for region in found:
            text = f"interference: {region} is mapped inside the arena but this run never mapped it"
            if text not in self._reported:
                self._reported.add(text)
                problems.append(text)
        return problems

    def _suspect(self, arena: k.Arena) -> bool:
        """Might something this run did not create be mapped in `arena`?

        With PROCMAP_QUERY: walk the mappings present in the arena (usually none or a few,
        one ioctl each) and look each up in `_created`. Otherwise: one probe per gap of
        `_created`, or, past PROBE_LIMIT gaps, "look" (the maps file is cheaper then)."""
        occupancy = self._occupancy
        if occupancy.method == "procmap-query":
            try:
                for lo, hi in occupancy.mappings(arena.base, arena.end):
                    if not self._covered(max(lo, arena.base), min(hi, arena.end)):
                        return True
                return False
            except OSError:
                occupancy.close()  # from now on: the probe
        if self._gaps is None:
            self._gaps = {}
        free = self._gaps.get(arena.base)
        if free is None:
            free = self._gaps[arena.base] = gaps(arena.base, arena.end, self._created)
        if len(free) > PROBE_LIMIT:
            return True
        return any(occupancy.busy(lo, hi) for lo, hi in free)

    def _foreign(self, arena: k.Arena) -> list[k.Region]:
        """Pages in `arena` (from /proc/self/maps) outside everything this run created."""
        out = []
        for region in arena.snapshot():
            for lo, hi in gaps(region.start, region.end, self._created):
                out.append(attrs.evolve(region, start=lo, end=hi))
        return out


def _batch_limit(option: int | None) -> int:
    """Rounds per native batch at most: the option, else $MMRACE_BATCH, else BATCH_LIMIT."""
    if option is None:
        text = os.environ.get(BATCH_ENV, "")
        if not text:
            return BATCH_LIMIT
        try:
            option = int(text)
        except ValueError:
            raise UsageError(f"${BATCH_ENV}: {text!r} is not a whole number") from None
    if option < 1:
        raise UsageError(f"batch: {option} rounds per batch; at least 1")
    return option


def _from_words(
    round_index: int, plans: Sequence[Sequence[mm.Op]], words: Sequence[int], start: int
) -> tuple[list[Operation], list[list[Record]], int]:
    """A batch round's records straight from the racer's out words (3 per op from op index
    `start`: result, call ns, return ns, -1 for not started / not returned; a plan's records end
    at its first call never started), task by task in plan order; each task's span as
    `spans_overlap` reads it ([(first call's result, its call, last call's return)], empty when
    none started); and the op index after the plans."""
    records = []
    spans: list[list[Record]] = []
    i = start * 3
    for task, plan in enumerate(plans):
        first = -1
        end: int | None = None
        for j, op in zip(range(i, i + 3 * len(plan), 3), plan):  # noqa: B905 (same length)
            call = words[j + 1]
            if call < 0:
                break  # never started (a call before it hung)
            ret = words[j + 2]
            if ret < 0:  # not returned: pending
                records.append(Operation(task, op, None, call, None, round_index))
                end = None
            else:
                records.append(Operation(task, op, words[j], call, ret, round_index))
                end = ret
            if first < 0:
                first = call
        spans.append([(None, first, end)] if first >= 0 else [])
        i += 3 * len(plan)
    return records, spans, i // 3


def _records(
    round_index: int, plans: Sequence[Sequence[mm.Op]], raw: Sequence[Sequence[Record]]
) -> list[Operation]:
    """The worker buffers as `Operation` values, task by task in plan order (a call that raised
    ends its task's buffer). `raw` has a buffer per pool thread, at least one per plan.
    (Plain `zip`: with a keyword argument it costs about 0.6 µs more per call.)"""
    return [
        Operation(task, op, result, call, ret, round_index)
        for task, plan in enumerate(plans)
        for op, (result, call, ret) in zip(plan, raw[task])  # noqa: B905
    ]


def _uname() -> tuple[str, ...]:
    import os

    u = os.uname()
    return (u.sysname, u.release, u.machine)


def make_target(options: TargetOptions) -> KernelTarget:
    """Registry factory for ``--target kernel``."""
    return KernelTarget(options)
