"""What every benchmark script shares: the machine record, shape options, the JSON report.

Each `benchmarks/bench_*.py` prints its figures and, with ``--json PATH``, writes one report
made by `report(...)` through `world_models.atomic.write_json_atomic` (a killed script
leaves no half-written file).
"""

from __future__ import annotations

import argparse
import os
import platform
from typing import Any

import torch

from world_models.checkpoint import package_versions


def hardware() -> dict[str, Any]:
    """What a run ran on: CPU, cores, torch threads, GPU, platform."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "gpu": gpu, "platform": platform.platform()}


def report(name: str, config: dict[str, Any], results: Any, **extra: Any) -> dict[str, Any]:
    """A benchmark report: its name, config, the machine, package versions, results, extras."""
    return {"benchmark": name, "config": config, "machine": hardware(), "versions": package_versions(),
            "results": results, **extra}


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1024,3,64,64"`` (or ``1024x3x64x64``) -> (1024, 3, 64, 64); at least two positive sizes."""
    shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    if len(shape) < 2 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"a shape needs >= 2 positive sizes, got {text!r}")
    return shape
