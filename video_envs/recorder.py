"""Record whole real episodes from a Gymnasium vector env stepped by any batched policy.

The one episode recorder behind `vwm collect` and the online Dreamer loop. Choices:

- Explicit seeded resets: episode k of a recorder gets seed ``seed + k`` and a finished
  sub-env is reset (``reset_mask``) right after the step that ended it, so Gymnasium's
  NEXT_STEP autoreset step never happens and is never recorded.
- Episodes are stored as Minari aligns them: N + 1 observations, N actions, rewards,
  terminations and truncations.
- Restorable: the live (unfinished) episodes are described by their seeds and actions
  (`live_state`), and `restore` replays them, so a resumed process continues the very same
  real episodes (Gymnasium envs are deterministic given the reset seed and the actions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np


@dataclass
class Episode:
    """One real episode, aligned as Minari stores it."""

    seed: int
    """Seed of the reset that started it."""
    obs: list[np.ndarray] = field(default_factory=list)
    """N + 1 observations (the reset one first)."""
    actions: list[np.ndarray] = field(default_factory=list)
    """N actions."""
    rewards: list[float] = field(default_factory=list)
    """N rewards."""
    terminations: list[bool] = field(default_factory=list)
    """N termination flags."""
    truncations: list[bool] = field(default_factory=list)
    """N truncation flags."""

    def __len__(self) -> int:
        return len(self.actions)

    def add(self, frame: np.ndarray, action: np.ndarray, reward: float, terminated: bool,
            truncated: bool) -> None:
        """Append one step: the frame it reached and what led there."""
        self.obs.append(np.asarray(frame).copy())
        self.actions.append(action)
        self.rewards.append(float(reward))
        self.terminations.append(bool(terminated))
        self.truncations.append(bool(truncated))

    def model_aligned(self, discrete: bool) -> dict[str, np.ndarray]:
        """Frames (T, H, W, C) with the action/reward/termination that led to each frame
        (zero action and reward for the first): the layout world-model datasets use."""
        first = np.zeros_like(np.asarray(self.actions[0])) if self.actions else 0
        actions = np.asarray([first, *self.actions])
        return {
            "frames": np.stack(self.obs).astype(np.uint8),  # (T, H, W, C)
            "actions": actions.astype(np.int64 if discrete else np.float32),  # (T,) or (T, A)
            "rewards": np.asarray([0.0, *self.rewards], np.float32),  # (T,)
            "terminated": np.asarray([False, *self.terminations], bool),  # (T,)
        }


class EpisodeRecorder:
    """Steps a (NEXT_STEP autoreset) vector env and returns its finished episodes."""

    def __init__(self, envs: gym.vector.VectorEnv, seed: int, started: int = 0) -> None:
        self.envs = envs
        self.seed = seed
        self.started = started
        """Episodes started so far (the next one gets seed ``seed + started``)."""
        self.num_envs = envs.num_envs
        self.live: list[Episode | None] = [None] * self.num_envs
        self.obs: np.ndarray | None = None
        """The current observations (N, ...) the policy acts on."""
        self.episode_start = np.ones(self.num_envs, bool)
        """Which envs' current observation starts an episode."""

    def _next_seed(self) -> int:
        seed = self.seed + self.started
        self.started += 1
        return seed

    def reset(self) -> np.ndarray:
        """Start a fresh episode in every env; returns the observations."""
        seeds = [self._next_seed() for _ in range(self.num_envs)]
        obs, _ = self.envs.reset(seed=seeds)
        self.obs = obs
        self.live = [Episode(s, [obs[i].copy()]) for i, s in enumerate(seeds)]
        self.episode_start = np.ones(self.num_envs, bool)
        return obs

    def step(self, actions: np.ndarray, active: int | None = None, reset_finished: bool = True
             ) -> list[Episode]:
        """Step every env with `actions`; record the transitions of the first `active` envs.

        Returns the episodes that ended on this step. Their envs are reset with fresh seeds
        unless `reset_finished` is false (then they hold no live episode any more).
        """
        active = self.num_envs if active is None else active
        next_obs, rewards, terms, truncs, _ = self.envs.step(actions)
        done = np.zeros(self.num_envs, bool)
        finished = []
        for i in range(active):
            episode = self.live[i]
            if episode is None:
                continue
            episode.add(next_obs[i], actions[i], rewards[i], terms[i], truncs[i])
            done[i] = terms[i] or truncs[i]
            if done[i]:
                finished.append(episode)
                self.live[i] = None
        self.obs = next_obs
        self.episode_start = np.zeros(self.num_envs, bool)
        if done.any() and reset_finished:
            seeds: list[int | None] = [None] * self.num_envs
            for i in np.flatnonzero(done):
                seeds[i] = self._next_seed()
            obs, _ = self.envs.reset(seed=seeds, options={"reset_mask": done})
            for i in np.flatnonzero(done):
                self.live[i] = Episode(int(seeds[i]), [obs[i].copy()])  # type: ignore[arg-type]
            self.obs, self.episode_start = obs, done
        return finished

    def unfinished(self) -> list[Episode]:
        """The live episodes with at least one step, their last step marked truncated."""
        out = []
        for episode in self.live:
            if episode is not None and len(episode):
                episode.truncations[-1] = True
                out.append(episode)
        return out

    # ----------------------------------------------------------------- resuming

    def live_state(self) -> dict[str, Any]:
        """JSON-serialisable description of the live episodes (for `restore`)."""
        return {
            "started": self.started,
            "episodes": [None if e is None else
                         {"seed": e.seed, "actions": np.asarray(e.actions).tolist()}
                         for e in self.live],
        }

    def restore(self, state: dict[str, Any]) -> np.ndarray:
        """Rebuild the live episodes of `live_state` by replaying their actions."""
        episodes = state["episodes"]
        if len(episodes) != self.num_envs or any(e is None for e in episodes):
            raise ValueError("can only restore a recorder whose every env holds a live episode")
        seeds = [int(e["seed"]) for e in episodes]
        obs, _ = self.envs.reset(seed=seeds)
        obs = obs.copy()
        dtype = self.envs.single_action_space.dtype
        self.live = []
        for i, (e, env) in enumerate(zip(episodes, self.envs.envs)):  # type: ignore[attr-defined]
            episode = Episode(seeds[i], [obs[i].copy()])
            for action in e["actions"]:
                action = np.asarray(action, dtype=dtype)
                frame, reward, terminated, truncated, _ = env.step(action)
                episode.add(frame, action, reward, terminated, truncated)
                obs[i] = frame
            self.live.append(episode)
        self.started = int(state["started"])
        self.obs = obs
        self.episode_start = np.asarray([len(e) == 0 for e in self.live])
        return obs
