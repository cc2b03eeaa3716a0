"""A synthetic task for the genie tests: a dot that two actions move left or right.

16x16 RGB frames, a 2x2 white dot on a dark background; action 0 moves it 2 pixels left,
action 1 two pixels right (wrapping around). Registered as ``vwm-test/Dot-v0`` by
`register` (a string entry point, so Minari can recover it).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

SIZE = 16
TASK = "vwm-test/Dot-v0"


def render(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """uint8 (..., SIZE, SIZE, 3) frames with the dot's top-left corner at (y, x)."""
    x, y = np.asarray(x), np.asarray(y)
    frames = np.full(x.shape + (SIZE, SIZE, 3), 20, np.uint8)
    cols, rows = np.arange(SIZE), np.arange(SIZE)
    in_x = ((cols - x[..., None]) % SIZE) < 2  # (..., W)
    in_y = ((rows - y[..., None]) % SIZE) < 2  # (..., H)
    frames[in_y[..., :, None] & in_x[..., None, :]] = 255
    return frames


def move(x: np.ndarray, action: np.ndarray) -> np.ndarray:
    """The dot's x after `action` (0 left, 1 right)."""
    return (x + np.where(action == 1, 2, -2)) % SIZE


def episodes(n: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random-policy episodes: frames uint8 (n, length, H, W, C) and actions (n, length)
    int64 aligned as in `world_models.base` (actions[:, t] led into frames[:, t])."""
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, SIZE, n), rng.integers(0, SIZE, n)
    actions = rng.integers(0, 2, (n, length))
    actions[:, 0] = 0
    xs = [x]
    for t in range(1, length):
        xs.append(move(xs[-1], actions[:, t]))
    frames = render(np.stack(xs, 1), np.repeat(y[:, None], length, 1))
    return torch.from_numpy(frames), torch.from_numpy(actions)


class DotEnv(gym.Env):
    """The dot task as a Gymnasium env (pixels, Discrete(2), reward 0)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(2)
        self.render_mode = render_mode
        self.x = self.y = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """A dot at a random place."""
        super().reset(seed=seed)
        self.x, self.y = (int(v) for v in self.np_random.integers(0, SIZE, 2))
        return render(np.array(self.x), np.array(self.y)), {}

    def step(self, action):
        """Move the dot."""
        self.x = int(move(np.array(self.x), np.array(int(action))))
        return render(np.array(self.x), np.array(self.y)), 0.0, False, False, {}

    def render(self):
        """The current frame."""
        return render(np.array(self.x), np.array(self.y))


def register() -> None:
    """Register ``vwm-test/Dot-v0`` (20-step episodes) once."""
    if TASK not in gym.registry:
        gym.register(TASK, entry_point="tests.world_models.genie_tasks:DotEnv", max_episode_steps=20)
