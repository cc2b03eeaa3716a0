"""Policies of `vwm collect`: 'random' or a Stable-Baselines3 model .zip, as a batched `PolicyFn`.

`make_policy` builds one from the ``--policy`` option; `as_actions` checks what a policy
returns against the action space (continuous actions are clipped to it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from video_envs.sb3_zip import load_sb3_zip, read_sidecar, sidecar_path

PolicyFn = Callable[[np.ndarray], np.ndarray]
"""A batched policy: uint8 observations (N, H, W, C) -> actions (N,) or (N, A)."""


def _sb3_policy(path: Path, envs: gym.vector.VectorEnv, device: str = "cpu",
                trust_pickle: bool = False) -> PolicyFn:
    """An SB3 model .zip (algorithm detected from the file) acting on the task's frames.

    Without `trust_pickle` nothing in the zip is unpickled (`video_envs.sb3_zip`): the policy
    is rebuilt for the task's own spaces.
    """
    meta = read_sidecar(path)
    if meta.get("obs_mode") == "latent" or int(meta.get("frame_stack", 1)) > 1 or meta.get("latent_actions"):
        raise ValueError(
            f"policy {path} observes latent features or stacked frames (see {sidecar_path(path).name}); "
            "collect feeds single frames: use `vwm evaluate` for such policies"
        )
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    model = load_sb3_zip(path, obs_space, act_space, device, trust_pickle)
    shape = obs_space.shape
    if model.observation_space.shape not in (shape, (shape[2], shape[0], shape[1])):
        raise ValueError(
            f"policy {path} observes {model.observation_space.shape} but the task gives {shape} "
            "(frame-stacked policies are not supported)"
        )

    def policy(obs: np.ndarray) -> np.ndarray:
        return model.predict(obs, deterministic=False)[0]

    algo = getattr(model, "algo", type(model).__name__)  # ZipPolicy or an SB3 class
    policy.__name__ = f"{algo} {path.name}"  # the dataset's algorithm_name
    return policy


def make_policy(policy: str, envs: gym.vector.VectorEnv, seed: int, device: str = "cpu",
                trust_pickle: bool = False) -> PolicyFn:
    """'random' (seeded samples of the action space) or an SB3 model .zip path as a policy
    (unpickled by SB3 only with `trust_pickle`)."""
    if policy == "random":
        space = envs.action_space
        space.seed(seed)

        def random(obs: np.ndarray) -> np.ndarray:
            return space.sample()

        return random
    path = Path(policy)
    if path.suffix != ".zip" or not path.is_file():
        raise ValueError(
            f"policy must be 'random' or the path of an existing SB3 model .zip, got {policy!r}"
        )
    return _sb3_policy(path, envs, device, trust_pickle)


def as_actions(actions: Any, space: spaces.Space, n: int) -> np.ndarray:
    """Validate a policy's output (N,) / (N, A) against the single-env action space."""
    actions = np.asarray(actions)
    if isinstance(space, spaces.Discrete):
        if actions.shape != (n,) or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(
                f"policy returned {actions.dtype} {actions.shape}, expected ints ({n},)"
            )
        return actions.astype(np.int64)
    if isinstance(space, spaces.Box):
        if actions.shape != (n, *space.shape):
            raise ValueError(f"policy returned shape {actions.shape}, expected {(n, *space.shape)}")
        return np.clip(actions, space.low, space.high).astype(space.dtype)
    return actions


__all__ = ["PolicyFn", "as_actions", "make_policy"]
