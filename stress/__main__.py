"""`python -m stress` is the `mmrace` command."""

from stress.cli import entry

entry()
