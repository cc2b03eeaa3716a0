"""`vwm bench SUITE`: run a suite (skipping finished runs) and build its report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.report import build_report
from benchmarks.runner import run_suite
from benchmarks.suites import get_suite, with_options
from world_models.threads import torch_threads


@dataclass
class BenchConfig:
    """Options of `vwm bench`."""

    suite: str = field(default="default", metadata={"positional": True})
    """Suite to run: smoke, quick, default, full, a target suite: cartpole, pendulum, minatar,
    planners, or families (model families side by side on the same data)."""
    results: str | None = None
    """Folder of result JSONs and videos (default: benchmarks/results/SUITE)."""
    work: str | None = None
    """Folder for models, agents and datasets (default: runs/bench/SUITE)."""
    report: bool = False
    """Only (re)build the report from the existing result JSONs."""
    family: tuple[str, ...] | None = None
    """Model families to run instead of the suite's (one or more, e.g. --family rssm)."""
    device: str = "auto"
    """Torch device: auto (cuda when available, else cpu), cpu, cuda or cuda:N. Every model, agent
    and planner of the suite runs on it (resolved where each run executes: on its Ray worker
    with --ray)."""
    baseline: str = "ppo_real"
    """Method the ratio column compares against (at the same real-step budget)."""
    progress: bool = True
    """Show progress bars."""
    threads: int = 2
    """Torch intra-op threads (results depend on it; 0: torch's default, one per core)."""


def bench_from_config(cfg: BenchConfig) -> Path:
    """`vwm bench` entry point: returns the report path."""
    suite = with_options(get_suite(cfg.suite), cfg.family)
    results = Path(cfg.results or f"benchmarks/results/{suite.name}")
    work = Path(cfg.work or f"runs/bench/{suite.name}")
    if not cfg.report:
        with torch_threads(cfg.threads):
            run_suite(suite, results, work, cfg.progress, cfg.device)
    report = build_report(results, results / "report", baseline=cfg.baseline)
    print(f"report: {report}")
    return report
