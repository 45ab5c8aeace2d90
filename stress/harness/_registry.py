"""The target registry: --target names to factories, imported only when chosen.

A factory is `make_target(options: TargetOptions) -> Target`. Built-in names map to
"module:function" strings; anything else containing ":" is a plug-in "package.module:factory",
handed to `stress.harness._plugin:make_target` (which loads and wraps the user's factory) when
that module exists, else called directly as a Target factory.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stress.errors import UsageError
from stress.harness._target import Target, TargetOptions

TARGETS: dict[str, str] = {
    "model": "stress.harness._model:make_target",
    "model-threads": "stress.harness._threads:make_target",
    "kernel": "stress.harness._kernel:make_target",
    "agent": "stress.harness._agent:make_target",
}
PLUGIN_LOADER = "stress.harness._plugin:make_target"
REPLAYABLE = {"model": "stress.harness._model:make_replay_target"}
PLUGIN_REPLAY = "stress.harness._plugin:make_replay_target"


def _load(ref: str, place: str) -> Callable[..., Any]:
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageError(f"{place}: module {module_name!r} not found") from None
        raise
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UsageError(f"{place}: {module_name!r} has no {attr!r}") from None


def make_target(options: TargetOptions) -> Target:
    """Build the target `options.spec` names; unknown names are a UsageError."""
    spec = options.spec
    if spec in TARGETS:
        factory = _load(TARGETS[spec], f"--target {spec}")
        return factory(options)
    if ":" in spec and all(spec.partition(":")[::2]):
        try:
            loader = _load(PLUGIN_LOADER, "--target")
        except UsageError:
            loader = _load(spec, f"--target {spec}")
        return loader(options)
    names = ", ".join([*TARGETS, "package.module:factory"])
    raise UsageError(f"--target: unknown target {spec!r} (choose from {names})")


def is_plugin(spec: str) -> bool:
    """Is ``--target spec`` a plug-in (``package.module:factory``)?"""
    return spec not in TARGETS and ":" in spec and all(spec.partition(":")[::2])


def make_replay_target(
    options: TargetOptions,
    schedule: Mapping[int, Sequence[int]],
    plans: Mapping[int, int] | None = None,
) -> Target:
    """A target that replays recorded decisions (``schedule[round]``) instead of choosing: the
    model target or a plug-in under the controlled scheduler; an exhaustive run's rounds also
    replay their recorded plan rounds (``plans[round]``)."""
    spec = options.spec
    if spec in REPLAYABLE:
        ref = REPLAYABLE[spec]
    elif is_plugin(spec):
        ref = PLUGIN_REPLAY
    else:
        raise UsageError(f"--target {spec}: its runs record no schedule and cannot be replayed")
    factory = _load(ref, f"--target {spec}")
    return factory(options, schedule, plans)
