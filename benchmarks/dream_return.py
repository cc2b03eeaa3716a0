"""A policy's return inside its world model, from the same starts as its real evaluation.

The dream-vs-real gap compares a policy's return in the model with its return on the real
task. Both must start where the real task starts: an imagined env resets from a bank of
contexts, the first ``context_len`` frames of stored episodes acted by whatever collected
them (mostly the random prefill), so its episodes begin after steps that the real
evaluation counts and often in states the agent would never reach (a random CartPole
prefill leaves the pole falling). `dream_return` instead plays each real evaluation
episode's first ``context_len - 1`` decisions on the real task with the policy itself (the
model burns in on exactly those frames and actions), then continues in imagination until
the model ends the episode or the task's time limit (in decisions) runs out, and adds the
real rewards of the prefix to the imagined ones: one full-length return per real seed.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.evaluate import reset_policy
from video_envs.imagination_io import task_time_limit


class LatentActor:
    """A Dreamer actor acting on imagined latent observations (SB3-like ``predict``)."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent

    @torch.inference_mode()
    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        """Features (B, F) -> the actor's mode as env actions (B,) or (B, A)."""
        device = next(self.agent.parameters()).device
        feats = torch.as_tensor(obs, dtype=torch.float32, device=device)
        return self.agent.actor.to_env(self.agent.actor.mode(feats)).cpu().numpy(), None


def real_prefix(policy: Any, task: str, seeds: list[int], steps: int, action_repeat: int = 1
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Play `steps` decisions of each real episode (one per seed) with `policy`.

    Returns frames uint8 (N, steps + 1, H, W, C) (the reset frame first; a finished
    episode repeats its last frame), actions (N, steps + 1[, A]) aligned as contexts are
    (``actions[:, t]`` led into ``frames[:, t]``, ``actions[:, 0]`` zero), the summed real
    rewards (N,) and whether each episode already ended (N,) bool.
    """
    from video_envs.wrappers import make_task

    n = len(seeds)
    envs = gym.vector.SyncVectorEnv([lambda: make_task(task, action_repeat) for _ in range(n)],
                                    autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    reset_policy(policy)
    obs, _ = envs.reset(seed=seeds)
    frames, actions = [obs.copy()], []
    total, done = np.zeros(n), np.zeros(n, dtype=bool)
    start = np.ones(n, dtype=bool)
    for _ in range(steps):
        action, _ = policy.predict(obs, episode_start=start, deterministic=True)
        action = np.asarray(action)
        obs, reward, terminated, truncated, _ = envs.step(action)
        total[~done] += reward[~done]
        obs = np.where(done.reshape(-1, *[1] * (obs.ndim - 1)), frames[-1], obs)  # (N, H, W, C)
        frames.append(obs.copy())
        actions.append(action)
        done |= terminated | truncated
        start = np.zeros(n, dtype=bool)
    envs.close()
    first = np.zeros_like(actions[0]) if actions else np.zeros(n, dtype=np.int64)
    return np.stack(frames, 1), np.stack([first, *actions], 1), total, done


def dream_return(real_policy: Any, imagined_policy: Any, checkpoint: Path, task: str,
                 episodes: int, seed: int, obs_mode: str = "latent", frame_stack: int = 1,
                 action_repeat: int = 1, device: str = "cpu") -> float:
    """Mean return of a policy inside the model at `checkpoint`, one episode per real seed
    ``seed .. seed + episodes - 1`` (the seeds `agents.evaluate.evaluate_policy` uses).

    `real_policy` acts on the real task (the prefix), `imagined_policy` (SB3-like
    ``predict``) on the imagined env's `obs_mode` observations, stacked `frame_stack` deep
    on the last axis as `VecFrameStack` does (the stack starts from the real prefix frames).
    """
    from video_envs.imagined import WorldModelVectorEnv
    from world_models.checkpoint import load_checkpoint

    seeds = [seed + i for i in range(episodes)]
    ckpt = load_checkpoint(checkpoint, device=device, expect_task=task)  # read once
    context_len = ckpt.model.spec.context_len
    prefix = context_len - 1  # decisions played on the real task
    frames, actions, totals, ended = real_prefix(real_policy, task, seeds, prefix, action_repeat)
    limit = task_time_limit(task, action_repeat) - prefix
    if limit < 1 or ended.all():
        return float(totals.mean())
    env = WorldModelVectorEnv(episodes, model=ckpt.model, contexts=ckpt.contexts, task=task,
                              obs_mode=obs_mode, device=device,
                              max_episode_steps=limit)  # rows that end autoreset; ignored after
    obs, _ = env.reset(seed=seeds, options={"context": {"frames": frames, "actions": actions}})
    stack: deque[np.ndarray] = deque(maxlen=frame_stack)
    for t in range(context_len - frame_stack, context_len - 1):  # pixels: real frames before
        stack.append(frames[:, max(t, 0)])  # the last, padded with the first
    alive = ~ended
    while alive.any():
        stack.append(obs)
        action, _ = imagined_policy.predict(np.concatenate(list(stack), axis=-1), deterministic=True)
        obs, reward, terminated, truncated, _ = env.step(np.asarray(action))
        totals[alive] += reward[alive]
        alive &= ~(terminated | truncated)
    env.close()
    return float(totals.mean())
