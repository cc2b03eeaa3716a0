"""`vwm train-agent`: Dreamer or any SB3 algorithm inside a world model, or the online loop."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from agents.dreamer import DreamerAgent, DreamerConfig, DreamerPolicy
from agents.dreamer_train import DreamerTrainConfig, make_starts, train_in_imagination
from agents.evaluate import evaluate_policy
from agents.online import OnlineConfig, agent_dir, run_online
from agents.sb3 import ALGOS, SB3Config, train_sb3_in_imagination
from world_models.checkpoint import load_checkpoint, read_config
from world_models.device import resolve_device
from world_models.locks import swapped_folder_lock
from world_models.option_checks import check_ranges
from world_models.threads import torch_threads


@dataclass
class TrainAgentConfig:
    """Options of `vwm train-agent`."""

    algo: str = "dreamer"
    """dreamer, or an SB3 algorithm: ppo, a2c, dqn, sac, td3."""
    checkpoint: str | None = None
    """World-model checkpoint (or run folder) to train inside (not with --online)."""
    online: bool = False
    """Dreamer only: run the online loop on the real task (collect, model, agent, repeat)."""
    task: str | None = None
    """Real task for evaluation (default: the checkpoint's task); required with --online."""
    family: str | None = None
    """World-model family: the one --online learns (default rssm); without --online, the
    family the checkpoint must hold (default: any)."""
    obs_mode: Literal["latent", "pixels"] = "latent"
    """SB3 only: observe model features or decoded frames in imagination."""
    action_mode: str = ""
    """SB3 only, models with latent actions (genie): act in "latent" or "real" actions ("":
    the checkpoint's native mode); a latent-action agent is evaluated on the real task
    through the checkpoint's fitted latent -> real decoder (the LAPO route)."""
    steps: int = 200_000
    """Imagined env steps to train for (Dreamer: updates = steps / (batch * horizon))."""
    real_steps: int = 50_000
    """--online: budget of real env steps."""
    preset: str = "small"
    """--online: world-model size preset."""
    out: str = "runs/agent"
    """Output folder for the agent."""
    eval_episodes: int = 10
    """Real episodes for the final evaluation."""
    num_envs: int = 16
    """SB3 only: parallel imagined envs."""
    progress: bool = True
    """Show progress bars."""
    seed: int = 0
    """Seed."""
    device: str = "auto"
    """Torch device: auto (cuda when available, else cpu), cpu, cuda or cuda:N."""
    threads: int = 2
    """Torch intra-op threads (results depend on it; 0: torch's default, one per core)."""
    loop: OnlineConfig = field(default_factory=OnlineConfig, metadata={"flatten": True, "rename": {
        "num_envs": "real_envs", "steps_per_iteration": "real_steps_per_iter", "batch_size": "model_batch",
        "seq_len": "model_seq", "lr": "model_lr"}})
    """--online: the loop's options (task, out, budget, family, preset, seed, device and
    progress come from the options above)."""
    agent: DreamerConfig = field(default_factory=DreamerConfig, metadata={"flatten": True, "rename": {
        "batch_size": "dreamer_batch", "lambda_": "lambda", "grad_clip": "agent_grad_clip"}})
    """Dreamer only: the actor-critic's hyper-parameters."""


def train_dreamer_offline(
    checkpoint: str, out: str | Path, steps: int, seed: int = 0, device: str = "cpu",
    agent_cfg: DreamerConfig | None = None, progress: bool = True,
) -> tuple[DreamerAgent, Any, dict[str, float]]:
    """Train a Dreamer agent inside a fixed world model; saves it (with the model) to OUT."""
    import gymnasium as gym

    import video_envs  # noqa: F401

    loaded = load_checkpoint(checkpoint, device=device)
    agent = DreamerAgent(loaded.spec, agent_cfg).to(device)
    limit = gym.spec(loaded.task).max_episode_steps if loaded.task in gym.registry else None
    train_cfg = DreamerTrainConfig(max_episode_steps=limit or 1000, seed=seed)
    torch.manual_seed(seed)
    starts = make_starts(loaded.model, loaded.contexts, agent, train_cfg)
    updates = max(1, steps // (agent.cfg.batch_size * agent.cfg.horizon))
    generator = torch.Generator(device=device).manual_seed(seed)
    metrics = train_in_imagination(agent, loaded.model, starts, updates, generator, progress)
    agent.save(out, world_model=loaded.path, extra={"task": loaded.task})
    return agent, loaded, metrics


def train_agent_from_config(cfg: TrainAgentConfig) -> dict[str, Any]:
    """`vwm train-agent` entry point (with the thread count fixed for reproducible runs)."""
    with torch_threads(cfg.threads):
        return _train_agent(cfg)


def _train_agent(cfg: TrainAgentConfig) -> dict[str, Any]:
    cfg = replace(cfg, device=str(resolve_device(cfg.device)))
    if cfg.algo != "dreamer" and cfg.algo not in ALGOS:
        raise ValueError(f"unknown --algo {cfg.algo!r}; choose dreamer or one of {ALGOS}")
    check_ranges(cfg, {"steps": 1, "real_steps": 1, "eval_episodes": 1, "num_envs": 1, "seed": 0,
                       "threads": 0})
    if cfg.online:
        if cfg.algo != "dreamer":
            raise ValueError("--online runs the Dreamer loop; use --algo dreamer")
        if cfg.task is None:
            raise ValueError("--online needs --task (the real task to learn)")
        online = replace(cfg.loop, task=cfg.task, out=cfg.out, real_steps=cfg.real_steps,
                         family=cfg.family or "rssm", preset=cfg.preset, seed=cfg.seed,
                         device=cfg.device, eval_episodes=cfg.eval_episodes, progress=cfg.progress)
        record = run_online(online, cfg.agent)
        curve = record["curve"]
        print(f"real return {curve[-1][1]:.1f} after {record['real_steps']} real steps; "
              f"agent: {agent_dir(cfg.out)}")
        return record
    if cfg.checkpoint is None:
        raise ValueError("--checkpoint is required (or use --online with --task)")
    if cfg.family is not None:
        held = read_config(cfg.checkpoint)["spec"]["family"]
        if held != cfg.family:
            raise ValueError(f"checkpoint {cfg.checkpoint} holds a {held!r} model, "
                             f"not --family {cfg.family!r}")
    with swapped_folder_lock(cfg.out):  # one writer per --out (a Dreamer agent is swapped in whole)
        return _train_offline(cfg)


def _train_offline(cfg: TrainAgentConfig) -> dict[str, Any]:
    """Dreamer or an SB3 algorithm inside the fixed world model of ``cfg.checkpoint``."""
    if cfg.algo == "dreamer":
        agent, loaded, _ = train_dreamer_offline(cfg.checkpoint, cfg.out, cfg.steps, cfg.seed,
                                                 cfg.device, cfg.agent, cfg.progress)
        task = cfg.task or loaded.task
        if task is None:
            raise ValueError("the checkpoint names no task; pass --task")
        result = evaluate_policy(DreamerPolicy(agent, loaded.model), task, cfg.eval_episodes,
                                 seed=10_000 + cfg.seed)
        summary = {"path": cfg.out, "real_return": result.mean, "returns": result.returns}
    else:
        sb3_cfg = SB3Config(algo=cfg.algo, obs_mode=cfg.obs_mode, action_mode=cfg.action_mode,
                            steps=cfg.steps, num_envs=cfg.num_envs, eval_episodes=cfg.eval_episodes,
                            seed=cfg.seed, device=cfg.device, progress=cfg.progress)
        summary = train_sb3_in_imagination(cfg.checkpoint, sb3_cfg, cfg.out, cfg.task)
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, np.ndarray)},
                     indent=2, default=str))
    return summary
