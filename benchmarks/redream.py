"""Re-measure the dream return of a suite's finished online Dreamer runs from their saved
agents and models (`benchmarks.dream_return`), and rewrite their result JSONs atomically.

Results written before the dream return started from the real evaluation's starts hold
the former measure; this brings them to the current one without training anything again.

    python -m benchmarks.redream cartpole [--results DIR] [--work DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.dream_return import LatentActor, dream_return
from benchmarks.results_schema import load_results
from benchmarks.runner import evaluation_seed, result_path, suite_locks
from benchmarks.suite_spec import RunSpec


def redream(suite: str, results: Path, work: Path, device: str = "cpu"
            ) -> list[tuple[str, float | None, float]]:
    """Re-measure every ``dreamer`` result of `suite` in `results` whose run folder under
    `work` still holds its agent; returns (file name, former, new dream return) rows. Holds
    the suite's writer locks (a suite running on either folder refuses it)."""
    with suite_locks(results, work):
        return _redream(suite, results, work, device)


def _redream(suite: str, results: Path, work: Path, device: str) -> list[tuple[str, float | None, float]]:
    from agents.dreamer import DreamerPolicy
    from agents.online import agent_dir, model_dir

    rows = []
    for r in load_results(results):
        if r.method != "dreamer" or r.suite != suite:
            continue
        spec = RunSpec(r.suite, r.task, r.method, r.seed, r.real_step_budget, r.model_preset, r.family)
        run_dir = work / spec.slug()
        if not agent_dir(run_dir).is_dir():
            print(f"skipped {spec.slug()}: no saved agent under {run_dir}")
            continue
        settings = r.config["settings"]
        policy = DreamerPolicy.load(agent_dir(run_dir), device)
        new = dream_return(policy, LatentActor(policy.agent), model_dir(run_dir), r.task,
                           min(settings["eval_episodes"], 10), evaluation_seed(r.seed),
                           action_repeat=int(settings["online"].get("action_repeat", 1)), device=device)
        rows.append((result_path(results, spec).name, r.dream_return, new))
        r.dream_return = new
        r.save(result_path(results, spec))
    return rows


def main(argv: list[str] | None = None) -> None:
    """Command line: re-measure, print former and new dream returns against the real ones."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite")
    parser.add_argument("--results", type=Path, default=None, help="default: benchmarks/results/SUITE")
    parser.add_argument("--work", type=Path, default=None, help="default: runs/bench/SUITE")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = args.results or Path("benchmarks/results") / args.suite
    work = args.work or Path("runs/bench") / args.suite
    for name, old, new in redream(args.suite, results, work):
        print(f"{name}: dream return {old} -> {new:.1f}")


if __name__ == "__main__":
    main()
