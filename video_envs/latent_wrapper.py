"""Latent observations on *real* envs, so latent-trained policies act on the real task.

`LatentObservationWrapper` (one Gymnasium env) and `LatentObservationVecEnv` (an SB3
`VecEnv` of real envs) run the model's filter (`world_models.filter.ModelFilter`) on the
real frames and output ``model.features(state)``: the same observation as the imagined env
with ``obs_mode="latent"``. An episode's state is burned in on its first real frame (a
one-frame context) and then observes every frame: the padding rule of `world_models.base`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvStepReturn, VecEnvWrapper

from video_envs.imagination_io import check_real_spaces, latent_space
from world_models.base import WorldModel, burn_in, reset_rows
from world_models.checkpoint import CheckpointError, load_checkpoint
from world_models.filter import ModelFilter


def resolve_model(
    checkpoint: str | Path | None,
    model: WorldModel | None,
    device: str | torch.device,
    task: str | None,
    env_id: str | None,
) -> WorldModel:
    """The model from `checkpoint` or `model`; checks the checkpoint's task against `task`/`env_id`."""
    if (checkpoint is None) == (model is None):
        raise ValueError("pass exactly one of checkpoint=PATH or model=WorldModel")
    if model is not None:
        return model
    ckpt = load_checkpoint(checkpoint, device=device, expect_task=task)  # type: ignore[arg-type]
    if task is None and env_id is not None and ckpt.task is not None and env_id != ckpt.task:
        raise CheckpointError(
            f"checkpoint {ckpt.path} was trained on task {ckpt.task!r}, the real env is {env_id!r}"
        )
    return ckpt.model


class LatentObservationWrapper(gym.Wrapper[np.ndarray, Any, np.ndarray, Any]):
    """A real pixel env observed through the model: obs = float32 features (F,)."""

    def __init__(
        self,
        env: gym.Env,
        checkpoint: str | Path | None = None,
        model: WorldModel | None = None,
        device: str | torch.device = "cpu",
        task: str | None = None,
    ) -> None:
        super().__init__(env)
        env_id = env.spec.id if env.spec is not None else None
        self.model = resolve_model(checkpoint, model, device, task, env_id)
        check_real_spaces(self.model.spec, env.observation_space, env.action_space)
        self.filter = ModelFilter(self.model, device)
        self.observation_space = latent_space(self.model.spec.feature_dim)

    def _features(self) -> np.ndarray:
        with torch.inference_mode():
            return self.filter.features()[0].float().cpu().numpy()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the real env and burn the model in on its first frame."""
        frame, info = self.env.reset(seed=seed, options=options)
        self.filter.update(np.asarray(frame)[None], None, np.ones(1, dtype=bool))
        return self._features(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Step the real env and fold its new frame into the model state."""
        frame, reward, terminated, truncated, info = self.env.step(action)
        self.filter.update(np.asarray(frame)[None], np.asarray(action)[None], np.zeros(1, dtype=bool))
        return self._features(), reward, terminated, truncated, info


class LatentObservationVecEnv(VecEnvWrapper):
    """An SB3 `VecEnv` of real pixel envs observed through the model (batched filter).

    ``terminal_observation`` infos are converted to features too.
    """

    def __init__(
        self,
        venv: VecEnv,
        checkpoint: str | Path | None = None,
        model: WorldModel | None = None,
        device: str | torch.device = "cpu",
        task: str | None = None,
    ) -> None:
        self.model = resolve_model(checkpoint, model, device, task, None)
        check_real_spaces(self.model.spec, venv.observation_space, venv.action_space)
        self.filter = ModelFilter(self.model, device)
        space = latent_space(self.model.spec.feature_dim)
        super().__init__(venv, observation_space=space)
        self._actions: np.ndarray | None = None

    def _features(self) -> np.ndarray:
        with torch.inference_mode():
            return self.filter.features().float().cpu().numpy()  # (B, F)

    def reset(self) -> np.ndarray:
        """Reset the real envs and burn the model in on their first frames."""
        frames = self.venv.reset()
        self.filter.update(frames, None, np.ones(self.num_envs, dtype=bool))
        return self._features()

    def step_async(self, actions: np.ndarray) -> None:
        """Forward the actions, keeping them for the filter."""
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        """Observe each row's new frame (the terminal one where an episode ended)."""
        frames, rewards, dones, infos = self.venv.step_wait()
        observed = np.array(frames, copy=True)  # (B, H, W, C)
        finished = np.flatnonzero(dones)
        for i in finished:
            observed[i] = infos[i]["terminal_observation"]
        self.filter.update(observed, self._actions, np.zeros(self.num_envs, dtype=bool))
        feats = self._features()
        for i in finished:
            infos[i]["terminal_observation"] = feats[i].copy()
        if finished.size:
            feats[dones] = self._restart(frames, dones)
        return feats, rewards, dones, infos

    @torch.inference_mode()
    def _restart(self, frames: np.ndarray, dones: np.ndarray) -> np.ndarray:
        device = self.filter.device
        fresh = burn_in(self.model, torch.as_tensor(frames[dones], device=device))  # (n, ...) rows
        mask = torch.as_tensor(dones, dtype=torch.bool, device=device)
        assert self.filter.state is not None
        self.filter.state = reset_rows(self.filter.state, mask, fresh)
        return self.model.features(fresh).float().cpu().numpy()
