"""`vwm bench SUITE`: run a suite (skipping finished runs), in this process or on Ray, and
build its report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.report import build_report
from benchmarks.runner import run_suite
from benchmarks.suite_spec import Suite, with_options
from benchmarks.suites import get_suite
from world_models.device import check_device_name
from world_models.threads import torch_threads


@dataclass
class BenchConfig:
    """Options of `vwm bench`."""

    suite: str = field(default="default", metadata={"positional": True})
    """Suite to run: smoke, quick, default, full, a target suite (3 seeds against SB3 on the
    real pixels at 1x and 10x the real steps): cartpole, acrobot, pendulum, minatar, planners,
    families (model families side by side on the same data), or action_free (agents inside a
    genie model learned from action-free video plus 5 labelled episodes, against an RSSM
    with every label)."""
    results: str | None = None
    """Folder of result JSONs and videos (default: benchmarks/results/SUITE)."""
    work: str | None = None
    """Folder for models, agents and datasets (default: runs/bench/SUITE)."""
    report: bool = False
    """Only (re)build the report from the existing result JSONs."""
    family: tuple[str, ...] | None = None
    """Model families to run instead of the suite's (one or more, e.g. --family rssm)."""
    method: tuple[str, ...] | None = None
    """Methods to run instead of the suite's (e.g. --method dreamer random); results join the
    suite's others in its report."""
    seed: tuple[int, ...] | None = None
    """Seeds to run instead of the suite's (e.g. --seed 0 1)."""
    task: tuple[str, ...] | None = None
    """Tasks to run instead of the suite's (e.g. --task vwm/MinAtarBreakout-v0)."""
    device: str = "auto"
    """Torch device: auto (cuda when available, else cpu), cpu, cuda or cuda:N. Every model, agent
    and planner of the suite runs on it (resolved where each run executes: on its Ray worker
    with --ray, where auto picks CUDA only for tasks --ray-gpus reserves GPUs for)."""
    baseline: str = "ppo_real"
    """Method the ratio column compares against (at the same real-step budget)."""
    progress: bool = True
    """Show progress bars (not with --ray: one line per finished task instead)."""
    threads: int = 2
    """Torch intra-op threads (results depend on it; 0: torch's default, one per core); with
    --ray, also the CPUs Ray reserves for each task."""
    ray: str | None = field(default=None, metadata={"const": "local", "metavar": "ADDRESS"})
    """Run each (task, family, method, seed, budget) as a Ray task, shared models trained
    once before the runs that use them: --ray alone starts a local Ray, --ray ADDRESS joins
    a cluster (auto: the one `ray start` runs here; ray://HOST:10001). Needs the ray extra."""
    ray_retries: int = 2
    """With --ray: times a failed task is retried before it is reported as failed (the rest
    of the grid goes on)."""
    ray_gpus: float = 0.0
    """With --ray: GPUs Ray reserves for each task (fractions share a GPU; 0: tasks run on
    the CPU unless --device names cuda)."""


def bench_from_config(cfg: BenchConfig) -> int:
    """`vwm bench` entry point: runs the suite, builds the report; returns the exit status
    (1 when some runs failed on Ray: the report covers the others)."""
    suite = with_options(get_suite(cfg.suite), cfg.family, cfg.method, cfg.seed, cfg.task)
    results = Path(cfg.results or f"benchmarks/results/{suite.name}")
    work = Path(cfg.work or f"runs/bench/{suite.name}")
    status = 0
    if cfg.ray is not None and not cfg.report:
        status = _bench_on_ray(cfg, suite, results, work)
    elif not cfg.report:
        with torch_threads(cfg.threads):
            run_suite(suite, results, work, cfg.progress, cfg.device)
    report = build_report(results, results / "report", baseline=cfg.baseline)
    print(f"report: {report}")
    return status


def _bench_on_ray(cfg: BenchConfig, suite: Suite, results: Path, work: Path) -> int:
    """Run `suite` on Ray (`benchmarks.ray_grid`), then its family videos here; the status."""
    from benchmarks.grid import GridJob
    from benchmarks.ray_grid import run_grid_ray
    from benchmarks.runner import suite_locks
    from benchmarks.shared_model import write_family_videos
    from world_models.device import resolve_device

    job = GridJob(suite.settings, str(results.resolve()), str(work.resolve()), check_device_name(cfg.device),
                  cfg.threads, cfg.ray_gpus, progress=False)
    with suite_locks(results, work):  # this driver is the folders' one writer (workers write for it)
        outcome = run_grid_ray(suite, results, work, job, cfg.ray, cfg.ray_retries)
        if suite.settings.family_videos:
            with torch_threads(cfg.threads):
                for video in write_family_videos(suite, results, work, str(resolve_device(cfg.device))):
                    print(f"real | families video: {video}")
    if outcome.ok:
        return 0
    print(f"{len(outcome.failed)} task(s) failed and {len(outcome.not_run)} could not run:", flush=True)
    for key, error in outcome.failed.items():
        print(f"  {key}: {error}")
    return 1
