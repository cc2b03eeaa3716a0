"""Planners over a trained CartPole model: CEM and MPPI against random shooting, same imagined budget.

Issue target: "CEM/MPPI over a trained CartPole model against random shooting at the same
number of imagined steps per action". Random shooting imagines ``candidates * iterations``
plans once; CEM and MPPI imagine ``candidates`` plans ``iterations`` times, all of length
``horizon``, so every planner spends ``candidates * iterations * horizon`` imagined steps
per env and real action. Each is evaluated on the same real ``vwm/CartPolePixels-v0``
episodes (episode i reset with seed ``seed + i``, all episodes stepped as one vector env,
planner seeded with ``seed``) with `agents.evaluate.evaluate_policy`; a uniformly random
policy is the reference. Reported: mean / IQM real return, imagined steps per action, wall
time of the planner per env action and the return ratio to random shooting.

Without ``--checkpoint`` a model is trained first (minutes): ``--collect-steps`` random real
steps go into a Minari dataset in a temporary ``MINARI_DATASETS_PATH``, then
``--model-steps`` gradient steps of the ``--preset`` RSSM (``--train-out DIR`` keeps it).

Run: ``python -m benchmarks.bench_planners [--checkpoint PATH] [--episodes N] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import video_envs  # noqa: F401  (registers the vwm ids)
from agents.evaluate import EvalResult, RandomPolicy, evaluate_policy
from agents.planning import Planner
from agents.planning_config import PlannerConfig, format_planner_spec
from benchmarks.benchio import hardware
from video_envs.collect import minari_root
from world_models.atomic import write_json_atomic
from world_models.checkpoint import load_checkpoint, package_versions

TASK = "vwm/CartPolePixels-v0"
"""The real task the planners act on."""
DATASET = "vwm/cartpole/bench-planners-v0"
"""Minari id of the random-policy dataset collected when no checkpoint is given."""


@dataclass
class BenchConfig:
    """Options of the benchmark (see ``--help``)."""

    checkpoint: str | None = None
    episodes: int = 10
    max_episode_steps: int = 200
    horizon: int = 10
    candidates: int = 32
    iterations: int = 4
    seed: int = 0
    threads: int | None = None
    family: str = "rssm"
    preset: str = "small"
    model_steps: int = 1500
    collect_steps: int = 10_000
    train_out: str | None = None
    json: str | None = None


class TimedPolicy:
    """Wraps a policy and adds up the wall time and the env actions of its `predict` calls."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.seconds = 0.0
        self.actions = 0

    def reset(self) -> None:
        """Forward `reset` (evaluate_policy calls it before each batch of episodes)."""
        if hasattr(self.policy, "reset"):
            self.policy.reset()

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Time the wrapped policy's `predict`."""
        start = time.perf_counter()
        out = self.policy.predict(observation, state, episode_start, deterministic)
        self.seconds += time.perf_counter() - start
        self.actions += observation.shape[0] if observation.ndim == 4 else 1
        return out

    @property
    def seconds_per_action(self) -> float:
        """Mean wall time per env action (a batched call counts once per env)."""
        return self.seconds / max(self.actions, 1)


def planner_configs(cfg: BenchConfig) -> dict[str, PlannerConfig]:
    """Random shooting, CEM and MPPI at equal imagined steps per action."""
    common = {"horizon": cfg.horizon, "seed": cfg.seed}
    configs = {
        "random_shooting": PlannerConfig(
            method="random", num_candidates=cfg.candidates * cfg.iterations, iterations=1, **common
        ),
        "cem": PlannerConfig(
            method="cem", num_candidates=cfg.candidates, iterations=cfg.iterations, **common
        ),
        "mppi": PlannerConfig(
            method="mppi", num_candidates=cfg.candidates, iterations=cfg.iterations, **common
        ),
    }
    budgets = {c.imagined_steps_per_action for c in configs.values()}
    assert len(budgets) == 1, f"unequal imagined budgets: {budgets}"
    return configs


def train_checkpoint(cfg: BenchConfig, workdir: Path) -> Path:
    """Collect random CartPolePixels steps and train a world model on them; the checkpoint."""
    from video_envs.collect import CollectConfig, collect
    from world_models.train import TrainConfig, train_world_model

    out = Path(cfg.train_out) if cfg.train_out else workdir / "model"
    print(
        f"no --checkpoint: collecting {cfg.collect_steps} random steps and training a {cfg.family} "
        f"{cfg.preset!r} model for {cfg.model_steps} steps (this takes minutes; --train-out keeps it)",
        flush=True,
    )
    start = time.perf_counter()
    with minari_root(workdir / "datasets"):
        summary = collect(
            CollectConfig(task=TASK, dataset=DATASET, steps=cfg.collect_steps, seed=cfg.seed, progress=False)
        )
        print(f"collected {summary.episodes} episodes / {summary.steps} steps in {summary.seconds:.1f} s")
        checkpoint = train_world_model(
            TrainConfig(
                dataset=DATASET,
                out=str(out),
                family=cfg.family,
                preset=cfg.preset,
                steps=cfg.model_steps,
                seed=cfg.seed,
                device="cpu",
                eval_every=0,
                checkpoint_every=cfg.model_steps,
                tensorboard=False,
            )
        )
    print(f"model trained in {time.perf_counter() - start:.0f} s: {checkpoint}")
    return checkpoint


def evaluate(name: str, policy: Any, cfg: BenchConfig) -> tuple[EvalResult, TimedPolicy, float]:
    """Evaluate a policy on the benchmark's episodes; returns (result, timer, wall seconds)."""
    timed = TimedPolicy(policy)
    start = time.perf_counter()
    result = evaluate_policy(
        timed,
        TASK,
        episodes=cfg.episodes,
        seed=cfg.seed,
        num_envs=cfg.episodes,
        deterministic=True,
        policy_name=name,
        env_kwargs={"max_episode_steps": cfg.max_episode_steps},
    )
    return result, timed, time.perf_counter() - start


def run(cfg: BenchConfig) -> dict[str, Any]:
    """Train (if needed), evaluate every planner and the random policy; returns the report."""
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads")
    with tempfile.TemporaryDirectory(prefix="vwm-bench-planners-") as tmp:
        checkpoint = Path(cfg.checkpoint) if cfg.checkpoint else train_checkpoint(cfg, Path(tmp))
        model = load_checkpoint(checkpoint, expect_task=TASK).model
        rows: list[dict[str, Any]] = []
        action_space = gym.make(TASK).action_space
        policies: list[tuple[str, Any, PlannerConfig | None]] = [
            ("random_policy", RandomPolicy(action_space, seed=cfg.seed), None)
        ]
        policies += [(name, Planner(model, pc), pc) for name, pc in planner_configs(cfg).items()]
        print(
            f"{cfg.episodes} episodes of {TASK} (seeds {cfg.seed}..{cfg.seed + cfg.episodes - 1}, "
            f"at most {cfg.max_episode_steps} steps)",
            flush=True,
        )
        for name, policy, pc in policies:
            result, timed, wall = evaluate(name, policy, cfg)
            rows.append(
                {
                    "policy": name,
                    "planner": None if pc is None else format_planner_spec(pc),
                    "imagined_steps_per_action": 0 if pc is None else pc.imagined_steps_per_action,
                    "mean_return": result.mean,
                    "std_return": result.std,
                    "iqm_return": result.iqm,
                    "mean_length": float(np.mean(result.lengths)),
                    "returns": result.returns,
                    "seconds_per_action": timed.seconds_per_action,
                    "env_actions": timed.actions,
                    "wall_seconds": wall,
                }
            )
            print(
                f"  {name:<16} mean {result.mean:7.1f}  IQM {result.iqm:7.1f}  "
                f"{timed.seconds_per_action * 1e3:8.2f} ms/action  ({wall:.0f} s)",
                flush=True,
            )
    shooting = next(r for r in rows if r["policy"] == "random_shooting")
    for row in rows:
        row["ratio_to_random_shooting"] = row["mean_return"] / shooting["mean_return"]
        row["iqm_ratio_to_random_shooting"] = row["iqm_return"] / shooting["iqm_return"]
    print_table(rows)
    return {
        "benchmark": "bench_planners",
        "task": TASK,
        "config": asdict(cfg),
        "checkpoint": str(checkpoint) if cfg.checkpoint or cfg.train_out else None,
        "machine": hardware(),
        "torch_threads": torch.get_num_threads(),
        "versions": package_versions(),
        "results": rows,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    """Readable summary of every policy."""
    print()
    print(
        f"{'policy':<16} {'planner':<50} {'img steps/act':>13} {'mean':>7} {'IQM':>7} "
        f"{'ms/action':>10} {'x RS mean':>9} {'x RS IQM':>8}"
    )
    print("-" * 128)
    for r in rows:
        print(
            f"{r['policy']:<16} {r['planner'] or '-':<50} {r['imagined_steps_per_action']:>13} "
            f"{r['mean_return']:>7.1f} {r['iqm_return']:>7.1f} {r['seconds_per_action'] * 1e3:>10.2f} "
            f"{r['ratio_to_random_shooting']:>9.2f} {r['iqm_ratio_to_random_shooting']:>8.2f}"
        )
    print("ms/action: planner wall time per env action (episodes batched); x RS: return / random shooting's")


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    """Command-line options -> `BenchConfig`."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="trained CartPolePixels model (default: train one)")
    p.add_argument("--episodes", type=int, default=10, help="real episodes per policy (seeds seed..)")
    p.add_argument("--max-episode-steps", type=int, default=200, help="time limit of the real episodes")
    p.add_argument("--horizon", type=int, default=10, help="planning horizon H")
    p.add_argument(
        "--candidates", type=int, default=32, help="CEM/MPPI candidates N (RS gets N * iterations)"
    )
    p.add_argument("--iterations", type=int, default=4, help="CEM/MPPI iterations")
    p.add_argument("--seed", type=int, default=0, help="episode, planner and training seed")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--family", default="rssm", help="model family trained without --checkpoint")
    p.add_argument("--preset", default="small", help="preset of the model trained without --checkpoint")
    p.add_argument("--model-steps", type=int, default=1500, help="gradient steps of that model")
    p.add_argument("--collect-steps", type=int, default=10_000, help="random real steps it is trained on")
    p.add_argument("--train-out", default=None, help="keep the trained model's run folder here")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    for name in ("episodes", "max_episode_steps", "horizon", "candidates", "iterations", "model_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return BenchConfig(**vars(args))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point."""
    cfg = parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = run(cfg)
    if cfg.json:
        print(f"wrote {write_json_atomic(cfg.json, report)}")
    return report


if __name__ == "__main__":
    main()
