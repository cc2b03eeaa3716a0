"""A native Stable-Baselines3 `VecEnv` over the batched imagination core.

SB3 cannot take Gymnasium vector envs, so `WorldModelSB3VecEnv` speaks SB3's API directly:
``step_wait`` resets finished rows in the same step, puts their last observation in
``infos[i]["terminal_observation"]`` and sets ``infos[i]["TimeLimit.truncated"]``. Every
row also gets ``infos[i]["cont_prob"]``. Seeding follows SB3: ``seed(s)`` makes the next
``reset()`` seed row i with ``s + i`` (the scheme of `video_envs.imagination_core`).

All rows share one model, so ``get_attr`` / ``env_method`` act on this one object and
repeat its answer per requested index; ``env_is_wrapped`` is always False.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from video_envs.imagination_core import ObsMode
from video_envs.imagined import WorldModelVectorEnv
from video_envs.validation import validate_actions
from world_models.base import WorldModel
from world_models.checkpoint import ContextBank


class WorldModelSB3VecEnv(VecEnv):
    """`num_envs` imagined episodes as an SB3 `VecEnv` (same-step autoreset).

    Arguments are those of `video_envs.imagined.WorldModelVectorEnv`.
    """

    def __init__(
        self,
        num_envs: int = 1,
        checkpoint: str | Path | None = None,
        obs_mode: ObsMode = "pixels",
        device: str = "cpu",
        max_episode_steps: int | None = None,
        terminate_threshold: float = 0.5,
        render_mode: str | None = "rgb_array",
        task: str | None = None,
        model: WorldModel | None = None,
        contexts: ContextBank | tuple[Any, Any] | None = None,
        action_mode: str | None = None,
    ) -> None:
        self.venv = WorldModelVectorEnv(
            num_envs=num_envs,
            checkpoint=checkpoint,
            obs_mode=obs_mode,
            device=device,
            max_episode_steps=max_episode_steps,
            terminate_threshold=terminate_threshold,
            render_mode=render_mode,
            task=task,
            model=model,
            contexts=contexts,
            autoreset_mode=AutoresetMode.DISABLED,
            action_mode=action_mode,
        )
        self.core = self.venv.core
        self.task = self.venv.task
        self.obs_mode = obs_mode
        self.render_mode = render_mode
        self._actions: np.ndarray | None = None
        super().__init__(num_envs, self.venv.single_observation_space, self.venv.single_action_space)

    @property
    def model(self) -> WorldModel:
        """The world model behind the env."""
        return self.core.model

    # ---------------------------------------------------------------- VecEnv API
    def reset(self) -> np.ndarray:
        """Reset every row, using the seeds from `seed()` and options from `set_options()`."""
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        obs, _ = self.venv.reset(seed=seeds, options=self._reset_options_dict())
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def _reset_options_dict(self) -> dict[str, Any] | None:
        contexts = [options.get("context") for options in self._options]
        if all(c is None for c in contexts):
            return None
        if any(c is None for c in contexts):
            raise ValueError("set_options: give a context to every env or to none")
        frames = np.stack([np.asarray(c["frames"]) for c in contexts])  # (B, T, H, W, C)
        context: dict[str, Any] = {"frames": frames}
        if all(c.get("actions") is not None for c in contexts):
            context["actions"] = np.stack([np.asarray(c["actions"]) for c in contexts])
        return {"context": context}

    def step_async(self, actions: np.ndarray) -> None:
        """Validate and store the actions (B,) or (B, A) for `step_wait`."""
        self._actions = validate_actions(actions, self.action_space, self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        """Step all rows; finished rows are reset at once (terminal obs in their info)."""
        if self._actions is None:
            raise RuntimeError("step_async must be called before step_wait")
        if self.core.state is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        out = self.core.step(self._actions)
        self._actions = None
        obs = out.obs
        done = out.terminated | out.truncated
        infos: list[dict[str, Any]] = [{"cont_prob": c} for c in out.cont_prob.tolist()]
        finished = np.flatnonzero(done)
        for i in finished:  # finished rows only
            infos[i]["terminal_observation"] = obs[i].copy()
            infos[i]["TimeLimit.truncated"] = bool(out.truncated[i] and not out.terminated[i])
        if finished.size:
            self.core.reset_rows(done)
            obs[done] = self.core.observation(done)
            for i in finished:
                self.reset_infos[i] = {}
        return obs, out.reward.astype(np.float32), done, infos

    def close(self) -> None:
        """Nothing to release (the model is shared)."""

    def get_images(self) -> Sequence[np.ndarray | None]:
        """Decoded current frames, uint8 (H, W, C) per row."""
        if self.core.state is None:
            return [None] * self.num_envs
        return list(self.core.frames())

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Row i is seeded with ``seed + i`` at the next `reset`."""
        return super().seed(seed)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute of this (shared) env, once per index."""
        value = getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute on this shared env (affects every row)."""
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call a method of this shared env once; its result is repeated per index."""
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """No row is wrapped by a Gymnasium wrapper."""
        return [False for _ in self._get_indices(indices)]
