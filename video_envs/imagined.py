"""Imagined environments: a learned world model behind the Gymnasium `Env` / `VectorEnv` APIs.

``gym.make("vwm/Imagined-v0", checkpoint=PATH, obs_mode="latent")`` gives a `WorldModelEnv`;
``gym.make_vec("vwm/Imagined-v0", num_envs=1024, checkpoint=PATH)`` a native
`WorldModelVectorEnv` (one forward pass for all rows). Both wrap the batched
`video_envs.imagination_core.ImaginationCore`, whose docstring explains the seeding scheme
(vector row i with ``reset(seed=s)`` follows the single env reset with ``seed=s + i``).

Time limit: the env truncates by itself after `max_episode_steps` (default: the real
task's limit, else 1000); ``truncated`` is raised exactly once, on the step that reaches
the limit. The id is registered without ``max_episode_steps``, so ``gym.make`` adds no
`TimeLimit` unless asked: ``gym.make(..., max_episode_steps=N)`` is consumed by
``gym.make`` (the env never sees it) and wraps the env in ``TimeLimit(N)``, which can only
shorten episodes below the env's own limit. To lengthen them, build `WorldModelEnv`
directly with ``max_episode_steps=N``; ``gym.make_vec`` passes it to the vector env.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from video_envs.imagination_core import ImaginationCore, ObsMode, build_core, seeds_for_rows
from video_envs.imagination_io import validate_context
from video_envs.validation import EpisodeGuard, check_options, validate_actions
from world_models.base import WorldModel
from world_models.checkpoint import ContextBank

RENDER_FPS = 30
SINGLE_OPTIONS = ("context",)
"""Keys `WorldModelEnv.reset` understands in ``options``."""
VECTOR_OPTIONS = ("context", "reset_mask")
"""Keys `WorldModelVectorEnv.reset` understands in ``options``."""


class WorldModelEnv(gym.Env[np.ndarray, Any]):
    """One imagined episode at a time; observations are decoded frames or latent features.

    Args:
        checkpoint: checkpoint folder (or run folder); or give `model` and `contexts`.
        obs_mode: ``"pixels"`` (uint8 frames, the real task's Box) or ``"latent"`` (float32).
        device: torch device the model runs on (auto, cpu, cuda or cuda:N, or a torch.device).
        max_episode_steps: time limit; None takes the real task's (else 1000).
        terminate_threshold: ``terminated`` when the continue probability is below it.
        render_mode: ``"rgb_array"`` (the decoded frame) or None.
        task: expected real task id; a checkpoint trained on another raises `CheckpointError`.
        model: an in-memory `WorldModel` (not JSON-serialisable: for in-process use).
        contexts: start contexts for `model` (`ContextBank` or ``(frames, actions)``).
        action_mode: ``"latent"`` or ``"real"`` for models with latent actions (genie): the
            env takes Discrete(n_latent) or the real task's actions; None: the checkpoint's
            native mode. Other families have only ``"real"``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": RENDER_FPS}

    def __init__(
        self,
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
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}"
            )
        self.core, self.task = build_core(
            1, checkpoint, model, contexts, task, obs_mode, device, max_episode_steps, terminate_threshold,
            action_mode,
        )
        self.observation_space = self.core.observation_space
        self.action_space = self.core.action_space
        self.render_mode = render_mode
        self.obs_mode = obs_mode
        self.max_episode_steps = self.core.max_episode_steps
        self._seeded = False
        self._episode = EpisodeGuard(type(self).__name__)

    @property
    def model(self) -> WorldModel:
        """The world model behind the env."""
        return self.core.model

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start from a bank context drawn by the seed, or ``options["context"]``."""
        options = check_options(options, SINGLE_OPTIONS, type(self).__name__)
        super().reset(seed=seed)
        all_rows = np.ones(1, dtype=bool)
        if seed is not None or not self._seeded:
            key = seed if seed is not None else int(self.np_random.integers(0, 2**63 - 1))
            self.core.seed_rows(all_rows, [key])
            self._seeded = True
        context = options.get("context")
        batch_context = None if context is None else validate_context(context, self.core.spec, None)
        self.core.reset_rows(all_rows, batch_context)
        self._episode.started()
        return self.core.observation()[0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One imagined step; ``info["cont_prob"]`` is the continue probability.

        Raises ``ResetNeeded`` before the first reset and once the episode has ended.
        """
        self._episode.check()
        act = validate_actions(action, self.action_space, None)  # (1,) or (1, A)
        out = self.core.step(act)
        info = {"cont_prob": float(out.cont_prob[0])}
        terminated, truncated = bool(out.terminated[0]), bool(out.truncated[0])
        self._episode.stepped(terminated, truncated)
        return out.obs[0], float(out.reward[0]), terminated, truncated, info

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """The decoded current frame, uint8 (H, W, C)."""
        if self.render_mode is None or self.core.state is None:
            return None
        return self.core.frames()[0]


class WorldModelVectorEnv(VectorEnv):
    """`num_envs` imagined episodes stepped in one batched forward pass.

    Same arguments as `WorldModelEnv`, plus `num_envs` and `autoreset_mode` (NEXT_STEP by
    default, SAME_STEP or DISABLED). Infos: ``cont_prob`` (B,) with mask ``_cont_prob``;
    with SAME_STEP, finished rows also get ``final_obs`` / ``final_info`` (gymnasium 1.x).
    ``reset(options=)`` accepts ``"context"`` (per row (B, T, ...) or broadcast (T, ...))
    and ``"reset_mask"`` (B,) bool, to reset some rows only. With DISABLED, stepping a row
    whose episode ended before resetting it raises ``ResetNeeded``.
    """

    metadata = {
        "render_modes": ["rgb_array"],
        "render_fps": RENDER_FPS,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

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
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        action_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}"
            )
        self.core: ImaginationCore
        self.core, self.task = build_core(
            num_envs,
            checkpoint,
            model,
            contexts,
            task,
            obs_mode,
            device,
            max_episode_steps,
            terminate_threshold,
            action_mode,
        )
        self.num_envs = num_envs
        self.obs_mode = obs_mode
        self.render_mode = render_mode
        self.max_episode_steps = self.core.max_episode_steps
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.single_observation_space = self.core.observation_space
        self.single_action_space = self.core.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._autoreset = np.zeros(num_envs, dtype=bool)  # (B,) rows to reset on the next step
        self._ended = np.zeros(num_envs, dtype=bool)  # (B,) DISABLED: finished rows not yet reset
        self._seeded = False

    @property
    def model(self) -> WorldModel:
        """The world model behind the env."""
        return self.core.model

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all rows (or ``options["reset_mask"]``); row i is seeded with ``seed + i``."""
        options = check_options(options, VECTOR_OPTIONS, type(self).__name__)
        n = self.num_envs
        mask = np.ones(n, dtype=bool)
        if options.get("reset_mask") is not None:
            mask = np.asarray(options["reset_mask"])
            if mask.shape != (n,) or mask.dtype != np.bool_:
                raise ValueError(
                    f'options["reset_mask"] must be a bool array of shape ({n},), '
                    f"got {mask.dtype} {mask.shape}"
                )
        row_seeds = seeds_for_rows(seed, n)
        first = next((s for s in row_seeds if s is not None), None)
        super().reset(seed=first)
        given = np.array([s is not None for s in row_seeds]) & mask
        if first is not None:  # same draws as WorldModelEnv.reset(seed=first)
            self.core.seed_rows(given, [s for s, g in zip(row_seeds, given) if g])
        if not self._seeded:  # rows never seeded get keys from np_random
            rest = ~given
            self.core.seed_rows(rest, self.np_random.integers(0, 2**63 - 1, size=int(rest.sum())))
            self._seeded = True
        context = options.get("context")
        batch_context = None
        if context is not None:
            frames, actions = validate_context(context, self.core.spec, n)
            if frames.shape[0] == n and not mask.all():
                index = torch.from_numpy(mask)
                frames, actions = frames[index], actions[index]
            batch_context = (frames, actions)
        self.core.reset_rows(mask, batch_context)
        self._autoreset[mask] = False
        self._ended[mask] = False
        return self.core.observation(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every row at once, autoresetting per `autoreset_mode`."""
        if self.core.state is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self._ended.any():
            raise gym.error.ResetNeeded(
                f"rows {np.flatnonzero(self._ended).tolist()} finished their episode and autoreset "
                'is DISABLED: reset them (reset(options={"reset_mask": ...})) before step()'
            )
        act = validate_actions(actions, self.single_action_space, self.num_envs)
        out = self.core.step(act)
        obs, reward, terminated, truncated = out.obs, out.reward, out.terminated, out.truncated
        infos: dict[str, Any] = {"cont_prob": out.cont_prob}
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            reset = self._autoreset
            if reset.any():
                self.core.reset_rows(reset)
                obs[reset] = self.core.observation(reset)
                reward[reset], terminated[reset], truncated[reset] = 0.0, False, False
                out.cont_prob[reset] = 1.0
            infos["_cont_prob"] = ~reset
            self._autoreset = terminated | truncated
        elif self.autoreset_mode == AutoresetMode.SAME_STEP:
            done = terminated | truncated
            infos["_cont_prob"] = ~done
            if done.any():
                final_obs = np.full(self.num_envs, None, dtype=object)
                for i in np.flatnonzero(done):  # finished rows only
                    final_obs[i] = obs[i].copy()
                final_cont = np.where(done, out.cont_prob, 0.0).astype(np.float32)
                infos.update(
                    final_obs=final_obs,
                    _final_obs=done,
                    final_info={"cont_prob": final_cont, "_cont_prob": done.copy()},
                    _final_info=done.copy(),
                )
                self.core.reset_rows(done)
                obs[done] = self.core.observation(done)
                out.cont_prob[done] = 1.0
        else:
            infos["_cont_prob"] = np.ones(self.num_envs, dtype=bool)
            self._ended = terminated | truncated
        return obs, reward, terminated, truncated, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        """Decoded current frames of every row, each uint8 (H, W, C)."""
        if self.render_mode is None or self.core.state is None:
            return None
        return tuple(self.core.frames())
