"""Declarative race workloads, expanded into per-task operation plans (imports `mm` only)."""
