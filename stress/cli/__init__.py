"""The `mmrace` command line: a thin dispatcher over one module per subcommand.

Each subcommand lives in `stress.cli.<name>` and offers `HELP` (one line),
`add_arguments(parser)` and `run(args) -> int`. Modules are imported only when their
subcommand runs, so `mmrace --help` stays fast and one broken subcommand cannot take the
others down. A `UsageError` becomes one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from stress.errors import UsageError

# name -> (module, one-line help). Order is the order shown by `mmrace --help`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("stress.cli.run", "race tasks for the same addresses, record, check and report"),
    "replay": ("stress.cli.replay", "re-run a recorded model run and compare the histories"),
    "check": ("stress.cli.check", "check a history file for linearizability"),
    "exec": ("stress.cli.exec", "run a sequential operation script against one or two targets"),
    "list": ("stress.cli.list", "list the workload catalog"),
    "sweep": ("stress.cli.sweep", "run a workload at several task counts and plot scaling"),
    "report": ("stress.cli.report", "write a self-contained HTML report for a run directory"),
    "plot": ("stress.cli.plot", "redraw the plots of an existing run"),
    "mutants": ("stress.cli.mutants", "run every bug variant through the catalog"),
    "bench": ("stress.cli.bench", "measure speed: checker, harness"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line and exit code 2 (argparse's own convention)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _available() -> dict[str, tuple[str, str]]:
    found = {}
    for name, (module, help_text) in SUBCOMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            found[name] = (module, help_text)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mmrace",
        description="Stress MAP_FIXED_NOREPLACE's atomic-probe promise and check the history.",
    )
    from stress import __version__

    parser.add_argument("--version", action="version", version=f"mmrace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_text) in _available().items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args))
    except UsageError as exc:
        print(f"mmrace {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mmrace {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`mmrace list | head`): not an error of ours, and no traceback.
        # Point stdout at devnull so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def entry() -> None:
    sys.exit(main())
