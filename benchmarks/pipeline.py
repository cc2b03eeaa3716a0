"""`vwm run`: the whole pipeline on one task, from nothing to a report.

The default (`quick`) preset compares, for the same 10,000 real CartPolePixels steps, the
online Dreamer (real steps -> world model -> actor-critic trained only in imagination)
with SB3 PPO trained on the real pixels and a random policy, evaluates all on the real
task and writes the report. `default`/`full` add SB3 and planners inside a model learned
from random data. Every stage skips or resumes what an earlier run of the same command
finished.

A run is deterministic on one machine: every RNG is seeded from the run's seed and torch
uses a fixed number of intra-op threads (`threads`), so re-running with the same seed
gives the same numbers. Float reductions depend on the thread count and the CPU's
instruction set, so another thread count or another kind of CPU gives other numbers (for
RL, a different trajectory, not only different last digits).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from benchmarks.report import build_report
from benchmarks.runner import run_suite
from benchmarks.suite_spec import with_options
from benchmarks.suites import get_suite
from world_models.threads import torch_threads


@dataclass
class RunConfig:
    """Options of `vwm run`."""

    preset: Literal["smoke", "quick", "default", "full"] = "quick"
    """smoke (tiny, ~1 min), quick (random, real-env PPO and online Dreamer at 10k real steps,
    under 10 min on 2 cores), default or full (more methods and seeds; hours)."""
    task: str = "vwm/CartPolePixels-v0"
    """Real task."""
    out: str = "runs/vwm-run"
    """Run folder: OUT/results (JSON, videos), OUT/report (README.md, plots), OUT/work."""
    seed: int | None = None
    """Run a single seed instead of the preset's seeds."""
    family: str | None = None
    """World-model family (default: the preset's, rssm)."""
    device: str = "auto"
    """Torch device: auto (cuda when available, else cpu), cpu, cuda or cuda:N. Every model,
    agent and planner runs on it."""
    progress: bool = True
    """Show progress bars."""
    threads: int = 2
    """Torch intra-op threads (results depend on it; 0: torch's default, one per core)."""


def run_pipeline(cfg: RunConfig) -> Path:
    """Run (or resume) the pipeline; returns the report path."""
    suite = with_options(get_suite(cfg.preset), (cfg.family,) if cfg.family else None)
    if cfg.preset != "full":
        suite = replace(suite, tasks=(cfg.task,))
    if cfg.seed is not None:
        suite = replace(suite, seeds=(cfg.seed,))
    out = Path(cfg.out)
    with torch_threads(cfg.threads):
        run_suite(suite, out / "results", out / "work", cfg.progress, cfg.device)
    report = build_report(out / "results", out / "report")
    print(f"\nreport: {report}")
    return report


def run_from_config(cfg: RunConfig) -> None:
    """`vwm run` entry point."""
    run_pipeline(cfg)
