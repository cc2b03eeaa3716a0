"""`vwm run`: the whole pipeline on one task, from nothing to a report.

collect random real steps -> train the world model -> train agents in imagination
(online Dreamer, SB3 PPO on latent features, a CEM planner) and the real-env PPO baseline
at the same real budget -> evaluate all on the real task -> write the report. Every stage
skips or resumes what an earlier run of the same command finished.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from benchmarks.report import build_report
from benchmarks.runner import run_suite
from benchmarks.suites import get_suite, with_options


@dataclass
class RunConfig:
    """Options of `vwm run`."""

    preset: Literal["smoke", "quick", "default", "full"] = "quick"
    """smoke (tiny, ~1 min), quick (~15 min on 2 cores), default or full (benchmark quality)."""
    task: str = "vwm/CartPolePixels-v0"
    """Real task."""
    out: str = "runs/vwm-run"
    """Run folder: OUT/results (JSON, videos), OUT/report (README.md, plots), OUT/work."""
    seed: int | None = None
    """Run a single seed instead of the preset's seeds."""
    family: str | None = None
    """World-model family (default: the preset's, rssm)."""
    device: str = "cpu"
    """Torch device of every model, agent and planner."""
    progress: bool = True
    """Show progress bars."""


def run_pipeline(cfg: RunConfig) -> Path:
    """Run (or resume) the pipeline; returns the report path."""
    suite = with_options(get_suite(cfg.preset), (cfg.family,) if cfg.family else None)
    if cfg.preset != "full":
        suite = replace(suite, tasks=(cfg.task,))
    if cfg.seed is not None:
        suite = replace(suite, seeds=(cfg.seed,))
    out = Path(cfg.out)
    run_suite(suite, out / "results", out / "work", cfg.progress, cfg.device)
    report = build_report(out / "results", out / "report")
    print(f"\nreport: {report}")
    return report


def run_from_config(cfg: RunConfig) -> None:
    """`vwm run` entry point."""
    run_pipeline(cfg)
