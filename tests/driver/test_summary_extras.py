"""What the summary adds for the report: the host's facts, and for a run that cannot be
replayed a copy-paste `mmrace run ...` with its settings."""

from __future__ import annotations

import shlex
from pathlib import Path

import workloads
from stress.driver import host_facts, rerun_command
from stress.harness import RunConfig, TargetOptions


def _config(spec: str, **options: object) -> RunConfig:
    workload = workloads.get("same-page")
    target = TargetOptions(spec=spec, seed=9, **options)  # type: ignore[arg-type]
    return RunConfig(workload, "same-page", target, 4, 30, None, Path("out"))


def test_rerun_command_repeats_the_settings() -> None:
    argv = shlex.split(rerun_command(_config("model-threads", variant="check-then-act")))
    assert argv[:3] == ["mmrace", "run", "same-page"]
    pairs = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert pairs == {
        "--target": "model-threads",
        "--tasks": "4",
        "--rounds": "30",
        "--seed": "9",
        "--variant": "check-then-act",
    }


def test_rerun_command_of_a_kernel_run_has_no_model_options() -> None:
    text = rerun_command(_config("kernel", scheduler="random"))
    assert text == "mmrace run same-page --target kernel --tasks 4 --rounds 30 --seed 9"


def test_host_facts() -> None:
    host = host_facts()
    assert set(host) == {"kernel", "page_size", "mmap_min_addr", "lsm_mmap_min_addr", "privileged"}
    assert host["page_size"] > 0 and host["page_size"] & (host["page_size"] - 1) == 0
    assert isinstance(host["privileged"], bool)
