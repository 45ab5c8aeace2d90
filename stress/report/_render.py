"""Drawing the plots in parallel, in processes that imported matplotlib ahead of time.

Importing matplotlib takes most of a second and each figure a tenth or more, and the process
that raced has nothing else to do while they are drawn. So figures are drawn by workers forked
from a multiprocessing *forkserver* that preloads `plots.save` (matplotlib): `warm_up()` starts
it, and `mmrace run` calls that before the race, so the import happens on another core while
the race runs; `render(kind, data, fmt)` then forks a few workers and draws one figure per job,
largest first. The bytes are the same as drawing in-process (`plots.save` fixes the style).
When no process can be started (a sandbox without semaphores, say) the figures are drawn here.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from typing import Any

PRELOAD = ["stress.report._warm"]
MAX_WORKERS = 4
# the figures that take longest first, so the last job to finish is a short one
_COST = {"timeline": 0, "latency": 1, "lock-wait": 2, "latency-time": 3}

_started = False


def _context() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def warm_up() -> None:
    """Start the forkserver (it imports matplotlib in the background); never fails."""
    global _started
    if _started:
        return
    try:
        from multiprocessing import forkserver

        _context()
        forkserver.ensure_running()
        _started = True
    except Exception:  # drawing falls back to this process; nothing to report here
        pass


def _quiet() -> None:
    # Ctrl-C reaches the whole process group: the main process decides, workers stay silent
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _layouts(kind: str, data: Any) -> dict[str, Any]:
    from plots import save

    if kind == "run":
        return save.run_layouts(data)
    if kind == "sweep":
        return save.sweep_layouts(data)
    return save.mutant_layouts(data)


def draw_one(kind: str, data: Any, name: str, fmt: str) -> bytes:
    """Draw figure ``name`` of ``kind`` ("run", "sweep", "mutants") for ``data``."""
    from plots import save

    layout = _layouts(kind, data)[name]
    return save.render({name: layout}, fmt)[name]


def names(kind: str, data: Any) -> list[str]:
    """The figures ``data`` gets, in report order (cheap: builds no figure)."""
    return list(_layouts(kind, data))


def render(kind: str, data: Any, fmt: str = "png", workers: int | None = None) -> dict[str, bytes]:
    """Every figure of ``data`` as bytes, in report order, drawn by parallel workers."""
    wanted = names(kind, data)
    count = workers if workers is not None else min(MAX_WORKERS, os.cpu_count() or 1)
    count = min(count, len(wanted))
    if count > 1:
        try:
            warm_up()
            order = sorted(wanted, key=lambda n: _COST.get(n, 9))
            with ProcessPoolExecutor(count, mp_context=_context(), initializer=_quiet) as pool:
                futures = {n: pool.submit(draw_one, kind, data, n, fmt) for n in order}
                drawn = {n: f.result() for n, f in futures.items()}
            return {n: drawn[n] for n in wanted}
        except (OSError, ImportError, RuntimeError, EOFError, ValueError):
            pass  # no processes here (BrokenProcessPool is a RuntimeError): draw in-process
    from plots import save

    return save.render(_layouts(kind, data), fmt)
