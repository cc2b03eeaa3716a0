"""Stable-Baselines3 agents trained inside imagination (or on the real task, as the baseline).

`train_sb3_in_imagination` trains any SB3 algorithm on `WorldModelSB3VecEnv` (pixels or
latent features) with periodic evaluation on the real task, and saves the normal SB3
``.zip`` (loadable by plain SB3) plus a ``.vwm.json`` sidecar saying how to feed it real
observations (latent features through the world model, or stacked frames).
`train_sb3_real` is the baseline: the same algorithm on the real pixel task.
`load_sb3_policy` loads such a zip back as a policy on real frames, without unpickling it
unless asked (`video_envs.sb3_zip`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from agents.evaluate import FrameStackPolicy, LatentActionPolicy, LatentPolicy, Policy, evaluate_policy
from video_envs.sb3_zip import load_sb3_zip, read_sidecar, sidecar_path
from world_models.atomic import atomic_file, atomic_folder, write_json_atomic
from world_models.device import resolve_device

ALGOS = ("ppo", "a2c", "dqn", "sac", "td3")
"""SB3 algorithms vwm knows how to configure."""
DISCRETE_ONLY = ("dqn",)
CONTINUOUS_ONLY = ("sac", "td3")


@dataclass
class SB3Config:
    """How to train an SB3 agent (in imagination or on the real task)."""

    algo: str = "ppo"
    """SB3 algorithm: ppo, a2c, dqn, sac or td3."""
    obs_mode: Literal["latent", "pixels"] = "latent"
    """What the agent observes in imagination: model features or decoded frames."""
    action_mode: str = ""
    """Actions of a model with latent actions (genie): "latent" or "real" ("": the
    checkpoint's native mode). An agent trained on latent actions acts on the real task
    through the checkpoint's latent -> real decoder (fitted by `vwm fit-actions`)."""
    steps: int = 50_000
    """Environment steps to train for (imagined steps in imagination)."""
    num_envs: int = 16
    """Parallel environments."""
    frame_stack: int = 4
    """Frames stacked for pixel observations (velocities are invisible in one frame)."""
    eval_every: int = 0
    """Evaluate on the real task every N steps (0: only at the end)."""
    eval_episodes: int = 10
    """Real episodes per evaluation."""
    seed: int = 0
    """Seed of the agent and envs."""
    device: str = "auto"
    """Torch device: auto (cuda when available, else cpu), cpu, cuda or cuda:N. Runs the agent."""
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for the SB3 algorithm constructor."""
    progress: bool = True
    """Show SB3's progress bar while learning."""


def sb3_class(algo: str):
    """The SB3 algorithm class for a lower-case name."""
    import stable_baselines3 as sb3

    if algo not in ALGOS:
        raise ValueError(f"unknown SB3 algorithm {algo!r}; choose one of {ALGOS}")
    return getattr(sb3, algo.upper())


def check_algo_fits(algo: str, discrete: bool) -> None:
    """Refuse algorithm/action-space pairs SB3 does not support, with a clear message."""
    if discrete and algo in CONTINUOUS_ONLY:
        raise ValueError(f"{algo.upper()} needs continuous (Box) actions; this task's are discrete")
    if not discrete and algo in DISCRETE_ONLY:
        raise ValueError(f"{algo.upper()} needs discrete actions; this task's are continuous")


def default_algo_kwargs(algo: str, num_envs: int, pixels: bool) -> dict[str, Any]:
    """Sizes that suit small 64x64 tasks on a CPU."""
    if algo == "ppo":
        return {"n_steps": max(32, 1024 // num_envs), "batch_size": 256, "n_epochs": 4,
                "learning_rate": 3e-4, "ent_coef": 0.01}
    if algo == "a2c":
        return {"n_steps": 8, "learning_rate": 7e-4}
    if algo == "dqn":
        return {"learning_starts": 500, "buffer_size": 20_000 if pixels else 100_000,
                "train_freq": 4, "target_update_interval": 500, "exploration_fraction": 0.2}
    # SAC/TD3: a gradient step per env step, so CNN batches stay small on a CPU
    return {"learning_starts": 500, "buffer_size": 20_000 if pixels else 100_000,
            "batch_size": 64 if pixels else 256}


def _build(algo: str, env: Any, pixels: bool, cfg: SB3Config):
    kwargs = default_algo_kwargs(algo, cfg.num_envs, pixels)
    kwargs.update(cfg.algo_kwargs)
    policy = "CnnPolicy" if pixels else "MlpPolicy"
    device = str(resolve_device(cfg.device))
    return sb3_class(algo)(policy, env, seed=cfg.seed, device=device, verbose=0, **kwargs)


def save_sb3_zip(agent: Any, zip_path: str | Path) -> Path:
    """SB3's ``save`` of `agent` into a hidden temporary renamed over `zip_path`: a kill or a
    full disk leaves the previous zip whole (a failed write is a `SaveError`); returns the path."""
    with atomic_file(zip_path) as tmp:  # the temporary keeps the .zip suffix SB3 wants
        agent.save(str(tmp))
    return Path(zip_path)


def write_sidecar(zip_path: Path, meta: dict[str, Any]) -> None:
    """Write the ``.vwm.json`` that tells `agents.evaluate.load_policy` how to feed the model."""
    write_json_atomic(sidecar_path(zip_path), meta)


class RealEvalCallback:
    """Evaluates on the real task every `every` steps; keeps (steps, mean return) pairs.
    With `progress`, shows training steps in vwm's one progress-bar style (tqdm), in place
    of SB3's own rich bar, with the last real evaluation beside it."""

    def __init__(self, make_policy, task: str, every: int, episodes: int, seed: int,
                 progress: bool = False, total: int = 0, desc: str = "sb3") -> None:
        from stable_baselines3.common.callbacks import BaseCallback
        from tqdm.auto import tqdm

        outer = self
        self.history: list[tuple[int, float]] = []
        self.make_policy, self.task, self.every = make_policy, task, every
        self.episodes, self.seed = episodes, seed

        class _Callback(BaseCallback):
            bar: Any = None

            def _on_training_start(self) -> None:
                if progress:
                    self.bar = tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)

            def _on_step(self) -> bool:
                if outer.every and self.num_timesteps // outer.every > len(outer.history):
                    outer.evaluate(self.model, self.num_timesteps)
                    if self.bar is not None:
                        self.bar.set_postfix(eval=f"{outer.history[-1][1]:.1f}")
                if self.bar is not None:
                    self.bar.update(self.num_timesteps - self.bar.n)
                return True

            def _on_training_end(self) -> None:
                if self.bar is not None:
                    self.bar.close()

        self.callback = _Callback()

    def evaluate(self, model: Any, steps: int) -> float:
        """Evaluate `model` on the real task now."""
        result = evaluate_policy(
            self.make_policy(model), self.task, self.episodes, seed=10_000 + self.seed
        )
        self.history.append((steps, result.mean))
        return result.mean

    def final(self, model: Any, steps: int) -> float:
        """The return at the end of training (reusing an evaluation made at this very step)."""
        if self.history and self.history[-1][0] == steps:
            return self.history[-1][1]
        return self.evaluate(model, steps)


def train_sb3_in_imagination(
    checkpoint: str | Path, cfg: SB3Config, out: str | Path, task: str | None = None
) -> dict[str, Any]:
    """Train `cfg.algo` inside the world model at `checkpoint`; save OUT/<algo>.zip."""
    from stable_baselines3.common.vec_env import VecFrameStack

    from video_envs.sb3 import WorldModelSB3VecEnv
    from world_models.action_map import apply_action_mode
    from world_models.checkpoint import load_checkpoint, resolve_checkpoint_dir

    cfg = replace(cfg, device=str(resolve_device(cfg.device)))
    loaded = load_checkpoint(checkpoint, device=cfg.device)
    task = task or loaded.task
    if task is None:
        raise ValueError("the checkpoint names no task; pass --task")
    model, contexts = apply_action_mode(loaded.model, loaded.contexts, cfg.action_mode or None)
    latent_actions = model.spec.hparams.get("action_mode") == "latent"
    check_algo_fits(cfg.algo, model.spec.action_kind == "discrete")
    pixels = cfg.obs_mode == "pixels"
    env = WorldModelSB3VecEnv(
        cfg.num_envs, model=model, contexts=contexts, task=task, obs_mode=cfg.obs_mode, device=cfg.device,
    )
    env.seed(cfg.seed)
    if pixels and cfg.frame_stack > 1:
        env = VecFrameStack(env, cfg.frame_stack)
    agent = _build(cfg.algo, env, pixels, cfg)

    def as_policy(agent: Any):
        if not pixels:
            policy = LatentPolicy(agent, model)
        else:
            policy = FrameStackPolicy(agent, cfg.frame_stack) if cfg.frame_stack > 1 else agent
        return LatentActionPolicy(policy, model.action_map) if latent_actions else policy

    evaluator = RealEvalCallback(as_policy, task, cfg.eval_every, cfg.eval_episodes, cfg.seed,
                                 cfg.progress, cfg.steps, f"{cfg.algo} in imagination")
    start = time.perf_counter()
    agent.learn(total_timesteps=cfg.steps, callback=evaluator.callback)
    wall = time.perf_counter() - start
    final = evaluator.final(agent, agent.num_timesteps)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    zip_path = out / f"{cfg.algo}.zip"
    save_sb3_zip(agent, zip_path)
    # a copy of the world model next to the zip, so the agent folder is self-contained
    world_model_dir = out / "world_model"
    keep_model = not pixels or latent_actions
    if keep_model and resolve_checkpoint_dir(checkpoint) != world_model_dir:
        import shutil

        with atomic_folder(world_model_dir) as tmp:  # swapped in whole, never half-copied
            shutil.copytree(resolve_checkpoint_dir(checkpoint), tmp, dirs_exist_ok=True)
    write_sidecar(zip_path, {
        "algo": cfg.algo, "obs_mode": cfg.obs_mode, "task": task,
        "frame_stack": cfg.frame_stack if pixels else 1,
        "world_model": "world_model" if keep_model else None,
        "latent_actions": latent_actions,
        "trained_in": "imagination",
    })
    return {"path": str(zip_path), "real_return": final, "history": evaluator.history,
            "wall_time": wall, "imagined_steps": int(agent.num_timesteps)}


def train_sb3_real(
    task: str, cfg: SB3Config, out: str | Path | None = None
) -> dict[str, Any]:
    """The baseline: `cfg.algo` trained on the real pixel task for `cfg.steps` real steps."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack

    import video_envs  # noqa: F401

    discrete = isinstance(gym.make(task).action_space, gym.spaces.Discrete)
    check_algo_fits(cfg.algo, discrete)
    env = make_vec_env(task, n_envs=cfg.num_envs, seed=cfg.seed)
    if cfg.frame_stack > 1:
        env = VecFrameStack(env, cfg.frame_stack)
    agent = _build(cfg.algo, env, True, cfg)

    def as_policy(model: Any):
        return FrameStackPolicy(model, cfg.frame_stack) if cfg.frame_stack > 1 else model

    evaluator = RealEvalCallback(as_policy, task, cfg.eval_every, cfg.eval_episodes, cfg.seed,
                                 cfg.progress, cfg.steps, f"{cfg.algo} on the real task")
    start = time.perf_counter()
    agent.learn(total_timesteps=cfg.steps, callback=evaluator.callback)
    wall = time.perf_counter() - start
    final = evaluator.final(agent, agent.num_timesteps)
    result: dict[str, Any] = {"real_return": final, "history": evaluator.history,
                              "wall_time": wall, "real_steps": int(agent.num_timesteps)}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        zip_path = save_sb3_zip(agent, out / f"{cfg.algo}.zip")
        write_sidecar(zip_path, {"algo": cfg.algo, "obs_mode": "pixels", "task": task,
                                 "frame_stack": cfg.frame_stack, "trained_in": "real"})
        result["path"] = str(zip_path)
    return result


def load_sb3_model(path: str | Path, task: str, device: str = "cpu",
                   trust_pickle: bool = False) -> tuple[Any, dict[str, Any], Any]:
    """An SB3 zip's model, its ``.vwm.json`` sidecar and the world model it observes through
    (None for pixel agents).

    Without `trust_pickle` nothing is unpickled: the policy is rebuilt from the zip's weights
    for the spaces vwm knows (`video_envs.sb3_zip`): the task's frames (stacked as the sidecar
    says) or the world model's features, and the task's or the world model's actions.
    """
    import video_envs  # noqa: F401  (registers the tasks)
    from video_envs.imagination_io import action_space_from_spec, latent_space
    from world_models.checkpoint import load_checkpoint

    path = Path(path)
    meta = read_sidecar(path)
    if meta.get("task") not in (None, task):
        raise ValueError(f"{path} was trained on {meta['task']} (says {sidecar_path(path).name}), "
                         f"not on {task}")
    world_model = None
    if meta.get("obs_mode") == "latent" or meta.get("latent_actions"):
        if not meta.get("world_model"):
            raise ValueError(f"{sidecar_path(path)} names no world model for this latent agent")
        world_model = load_checkpoint(path.parent / str(meta["world_model"]), device=device).model
        if meta.get("latent_actions"):
            world_model = world_model.with_action_mode("latent")
    env = gym.make(task)
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    stack = int(meta.get("frame_stack", 1))
    if world_model is not None and meta.get("obs_mode") == "latent":
        obs_space = latent_space(world_model.spec.feature_dim)
    elif stack > 1:
        h, w, c = obs_space.shape
        obs_space = gym.spaces.Box(0, 255, (h, w, c * stack), np.uint8)
    if world_model is not None:  # trained in imagination: the model's action space
        act_space = action_space_from_spec(world_model.spec)
    model = load_sb3_zip(path, obs_space, act_space, device, trust_pickle)
    return model, meta, world_model


def load_sb3_policy(path: str | Path, task: str, device: str = "cpu", trust_pickle: bool = False) -> Policy:
    """An SB3 zip as a policy on real frames (latent ones get their world model's filter)."""
    model, meta, world_model = load_sb3_model(path, task, device, trust_pickle)
    policy: Any = model
    if meta.get("obs_mode") == "latent":
        policy = LatentPolicy(model, world_model)
    elif meta.get("frame_stack", 1) > 1:
        policy = FrameStackPolicy(model, int(meta["frame_stack"]))
    if meta.get("latent_actions"):  # trained on latent actions: decode them (LAPO)
        policy = LatentActionPolicy(policy, world_model.action_map)
    return policy
