"""MinAtar games with RGB frames: each 10x10 grid cell drawn as a block of pixels.

MinAtar's own ``render("rgb_array")`` is a 10x10 float image, so the frame is drawn here
from the boolean channel grid: each channel has a fixed colour (a later channel wins
where objects overlap) and the grid is upscaled by nearest-neighbour indexing to
``size`` x ``size`` (64x64 by default). MinAtar is imported lazily, on construction.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from video_envs.draw import upscale_indices, validate_size
from video_envs.validation import EpisodeGuard, check_action, check_options

PALETTE = np.array(
    [
        (0, 0, 0),  # empty cell
        (255, 214, 0),
        (0, 200, 255),
        (255, 64, 64),
        (64, 220, 64),
        (190, 90, 255),
        (255, 140, 0),
        (255, 255, 255),
        (40, 90, 255),
        (255, 120, 200),
        (150, 150, 150),
    ],
    dtype=np.uint8,
)
"""Colour of an empty cell (row 0) and of each MinAtar channel (rows 1..10)."""


class MinAtarPixelsEnv(gym.Env[np.ndarray, np.int64]):
    """A MinAtar game (``asterix``, ``breakout``, ``freeway``, ``seaquest``,
    ``space_invaders``) observed as (size, size, 3) uint8 RGB frames.

    Dynamics, rewards, sticky actions and difficulty ramping are MinAtar's own. The
    game's random state is seeded from ``self.np_random``, so ``reset(seed=s)`` makes
    the episode reproducible. ``info["grid"]`` holds the boolean channel grid.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        game: str = "breakout",
        size: int = 64,
        render_mode: str | None = None,
        sticky_action_prob: float = 0.1,
        difficulty_ramping: bool = True,
        use_minimal_action_set: bool = False,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.size = validate_size(size)
        self.render_mode = render_mode
        from minatar import Environment  # lazy: pulls matplotlib and seaborn

        try:
            self.game = Environment(
                env_name=game,
                sticky_action_prob=sticky_action_prob,
                difficulty_ramping=difficulty_ramping,
            )
        except ModuleNotFoundError as err:
            raise ValueError(f"unknown MinAtar game {game!r}") from err
        self.game_name = game
        full = list(range(self.game.num_actions()))
        self._actions = self.game.minimal_action_set() if use_minimal_action_set else full
        rows, cols, channels = self.game.state_shape()
        if channels >= len(PALETTE):
            raise ValueError(f"MinAtar game {game!r} has {channels} channels, palette too short")
        self._channel_ids = np.arange(1, channels + 1, dtype=np.uint8)  # (C,)
        self._rows = upscale_indices(rows, self.size)  # (size,) grid row under each pixel row
        self._cols = upscale_indices(cols, self.size)  # (size,)
        self._seeded = False
        self.action_space = spaces.Discrete(len(self._actions))
        self.observation_space = spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)
        self._episode = EpisodeGuard(type(self).__name__)

    def draw(self, grid: np.ndarray | None = None) -> np.ndarray:
        """A new (size, size, 3) uint8 frame of `grid` (default: the current grid)."""
        if grid is None:
            grid = self.game.state()  # (10, 10, C) bool
        labels = (grid * self._channel_ids).max(axis=2)  # (10, 10): top channel + 1, or 0
        labels = labels.take(self._rows, axis=0).take(self._cols, axis=1)  # (size, size)
        return PALETTE.take(labels, axis=0)  # (size, size, 3)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new game; the game's RNG is reseeded from `seed` when one is given (no options)."""
        check_options(options, (), type(self).__name__)
        super().reset(seed=seed)
        if seed is not None or not self._seeded:
            self.game.seed(int(self.np_random.integers(2**31 - 1)))
            self.game.last_action = 0
            self._seeded = True
        self.game.reset()
        self._episode.started()
        grid = self.game.state()
        return self.draw(grid), {"grid": grid}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply one checked action; returns (frame, reward, terminated, False, info)."""
        self._episode.check()
        action = check_action(action, self.action_space)
        reward, done = self.game.act(self._actions[action])
        self._episode.stepped(bool(done), False)
        grid = self.game.state()
        return self.draw(grid), float(reward), bool(done), False, {"grid": grid}

    def render(self) -> np.ndarray:
        """The current frame (the same image as the observation)."""
        return self.draw()
