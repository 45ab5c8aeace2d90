"""mmrace's stress package: history format, checker, harness, targets, agent and CLI."""

__version__ = "0.1.0"
