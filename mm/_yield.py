"""Named yield points: where a real implementation has a window, a hook may run other tasks.

The harness installs a hook to inject scheduling noise (threads) or to hand control to a
controlled scheduler (trio tasks). A user's plug-in target calls the same functions at its own
windows. With no hook installed a yield point is one context-variable lookup.

Hooks live in context variables, so each run (and each trio task tree) has its own; a new
thread starts with an empty context, so a threaded harness installs its hook in every worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar

SyncHook = Callable[[str], None]
AsyncHook = Callable[[str], Awaitable[None]]

_sync_hook: ContextVar[SyncHook | None] = ContextVar("mm_sync_yield_hook", default=None)
_async_hook: ContextVar[AsyncHook | None] = ContextVar("mm_async_yield_hook", default=None)

# The names the built-in cores use.
MMAP_CHECKED = "mmap:checked"  # between the overlap check and the insertion
MUNMAP_STEP = "munmap:step"  # between removing two parts of a range
MPROTECT_STEP = "mprotect:step"  # between changing two mappings
ENTER = "enter"  # before taking the lock


def yield_point(name: str) -> None:
    """A window in synchronous code: run the installed sync hook, if any."""
    hook = _sync_hook.get()
    if hook is not None:
        hook(name)


async def ayield_point(name: str) -> None:
    """A window in async code: await the installed async hook, if any.

    Yields to trio only when a hook is installed (the hook decides); cancellation is whatever
    the hook does on cancellation (the harness's hooks are cancellable checkpoints).
    """
    hook = _async_hook.get()
    if hook is not None:
        await hook(name)


def set_yield_hook(hook: SyncHook | None) -> None:
    """Install (or, with None, remove) the sync hook for the current context."""
    _sync_hook.set(hook)


def set_async_yield_hook(hook: AsyncHook | None) -> None:
    """Install (or, with None, remove) the async hook for the current context."""
    _async_hook.set(hook)


@contextlib.contextmanager
def yield_hooks(sync: SyncHook | None = None, async_: AsyncHook | None = None) -> Iterator[None]:
    """Install hooks for the duration of a block, restoring the previous ones after."""
    sync_token = _sync_hook.set(sync)
    async_token = _async_hook.set(async_)
    try:
        yield
    finally:
        _sync_hook.reset(sync_token)
        _async_hook.reset(async_token)
