"""The `mmrace` command line: a thin dispatcher over one module per subcommand.

Each subcommand lives in `stress.cli.<name>` and offers `HELP` (one line),
`add_arguments(parser)` and `run(args) -> int`. The modules import their heavy dependencies
inside `run`, so building the parser (and `mmrace --help`) stays fast. A `UsageError` becomes
one line on stderr and exit code 2, never a traceback; a `CouldNotRun` (a runtime that broke
while starting) one line and the UNKNOWN exit code, 3.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from stress.errors import CouldNotRun, UsageError, interruption
from stress.verdict import EXIT_CODES, Verdict

# The subcommands, in the order `mmrace --help` shows them: stress.cli.<name>.
SUBCOMMANDS = (
    "run", "replay", "check", "exec", "list", "sweep", "conformance", "report", "plot", "mutants",
    "bench",
)  # fmt: skip
# Commands that give no verdict: Ctrl-C ends them with the shell's 130.
NOT_JUDGING = ("list", "plot", "bench")


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line and exit code 2 (argparse's own convention)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mmrace",
        description="Stress MAP_FIXED_NOREPLACE's atomic-probe promise and check the history.",
    )
    from stress import __version__

    parser.add_argument("--version", action="version", version=f"mmrace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"stress.cli.{name}")
        sp = sub.add_parser(name, help=module.HELP, description=module.HELP)
        sp.set_defaults(_module=module.__name__)
        module.add_arguments(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from stress.cli._streams import guarded

    with guarded():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args._argv = [*(sys.argv[1:] if argv is None else argv)]  # for `run --isolate`
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args))
    except UsageError as exc:
        print(f"mmrace {args.command}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except CouldNotRun as exc:
        print(f"mmrace {args.command}: UNKNOWN: {exc}", file=sys.stderr)
        return EXIT_CODES[Verdict.UNKNOWN]
    except KeyboardInterrupt:
        # the judging commands judge what they have where they can; this one had nothing
        if args.command in NOT_JUDGING:
            print(f"mmrace {args.command}: interrupted ({interruption()})", file=sys.stderr)
            return 130
        print(
            f"mmrace {args.command}: interrupted ({interruption()}) before a verdict: UNKNOWN",
            file=sys.stderr,
        )
        return EXIT_CODES[Verdict.UNKNOWN]
    except BrokenPipeError:
        # (stdout and stderr are guarded: only a write around them gets here)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def one_line(message: str) -> str:
    """An error message on one line (a message quoting a file's text may hold newlines)."""
    return " ".join(message.split("\n")) if "\n" in message else message


def entry() -> None:
    sys.exit(main())
