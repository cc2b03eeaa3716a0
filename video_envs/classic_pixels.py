"""Classic-control tasks with RGB frames as observations.

Each env subclasses Gymnasium's own classic-control env, so physics, rewards and
termination are exactly the originals; only the observation is replaced by a frame
drawn straight at the target size with numpy (`video_envs.draw`), which is many times
faster than rendering with pygame and resizing. Velocities are not drawn: they follow
from consecutive frames. ``info["state"]`` carries the underlying physical state.

Input is checked at the boundary (`video_envs.validation`): an action outside the action
space (wrong dtype or shape, out of range, NaN) raises a ValueError naming the space instead
of reaching the original's assertion or being clipped silently; an unknown reset option
raises, and stepping after ``terminated`` raises ``ResetNeeded``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.acrobot import AcrobotEnv
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.pendulum import PendulumEnv

from video_envs.draw import blank, draw_segment, fill_circle, fill_rect, validate_size
from video_envs.validation import EpisodeGuard, check_action, check_options

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
GREY = (128, 128, 128)


class PixelObsMixin:
    """Replaces a classic-control env's vector observation by a drawn uint8 frame.

    Put it first in the bases, before the Gymnasium env it wraps; subclasses call
    `_init_pixels` after the env's own ``__init__`` and implement `draw`.
    """

    metadata: dict[str, Any]
    render_mode: str | None
    state: Any
    action_space: spaces.Space
    reset_options: tuple[str, ...] = ("low", "high")
    """Keys of ``reset(options=)`` the original env reads (the range of its initial state)."""

    def _init_pixels(self, size: int, render_mode: str | None) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, "
                f"got {render_mode!r}"
            )
        self.size = validate_size(size)
        self.observation_space = spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)
        self._episode = EpisodeGuard(type(self).__name__)

    def draw(self) -> np.ndarray:
        """A new (size, size, 3) uint8 frame of the current state."""
        raise NotImplementedError

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        info = dict(info)
        info["state"] = np.array(self.state, dtype=np.float64)
        return info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the dynamics exactly as the original env does; return the first frame."""
        options = check_options(options, self.reset_options, type(self).__name__) or None
        _, info = super().reset(seed=seed, options=options)  # type: ignore[misc]
        self._episode.started()
        return self.draw(), self._info(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Step the original dynamics (a checked action); return the frame instead of the state."""
        self._episode.check()
        action = check_action(action, self.action_space)
        _, reward, terminated, truncated, info = super().step(action)  # type: ignore[misc]
        self._episode.stepped(bool(terminated), bool(truncated))
        return self.draw(), float(reward), bool(terminated), bool(truncated), self._info(info)

    def render(self) -> np.ndarray:
        """The current frame (the same image as the observation)."""
        return self.draw()


class CartPolePixelsEnv(PixelObsMixin, CartPoleEnv):
    """`CartPole-v1` seen as frames: track, cart block and pole as a thick line.

    The cart's horizontal position maps linearly onto the image ([-2.4, 2.4] spans
    the width less half a cart on each side); the pole is drawn longer than to scale
    so that small angles stay visible at 64x64.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        size: int = 64,
        render_mode: str | None = None,
        sutton_barto_reward: bool = False,
    ) -> None:
        super().__init__(sutton_barto_reward=sutton_barto_reward, render_mode=render_mode)
        self._init_pixels(size, render_mode)
        s = float(self.size)
        self._cart_w = max(4, round(0.16 * s))
        self._cart_h = max(2, round(0.09 * s))
        self._track_y = round(0.78 * s)
        self._track_w = max(1, round(s / 64))
        self._margin = 0.5 * self._cart_w + 1.0
        self._pole_len = 0.45 * s
        self._pole_w = max(1.5, 0.05 * s)
        self._background = blank(self.size, WHITE)
        fill_rect(self._background, 0, self._track_y, s, self._track_y + self._track_w, BLACK)

    def draw(self) -> np.ndarray:
        """Frame of the current (x, theta)."""
        img = self._background.copy()
        if self.state is None:
            return img
        x, _, theta, _ = (float(v) for v in self.state)
        s, lim = float(self.size), self.x_threshold
        cx = self._margin + (x + lim) / (2 * lim) * (s - 2 * self._margin)
        top = self._track_y - self._cart_h
        half = 0.5 * self._cart_w
        fill_rect(img, cx - half, top, cx + half, self._track_y, BLACK)
        tip = (cx + self._pole_len * math.sin(theta), top - self._pole_len * math.cos(theta))
        draw_segment(img, (cx, top), tip, self._pole_w, (202, 152, 101))
        fill_circle(img, (cx, top), 0.3 * self._pole_w, (129, 132, 203))
        return img


class AcrobotPixelsEnv(PixelObsMixin, AcrobotEnv):
    """`Acrobot-v1` seen as frames: both links in different colours and the goal line."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, size: int = 64, render_mode: str | None = None) -> None:
        super().__init__(render_mode=render_mode)
        self._init_pixels(size, render_mode)
        s = float(self.size)
        reach = self.LINK_LENGTH_1 + self.LINK_LENGTH_2
        self._center = (0.5 * s, 0.5 * s)
        self._scale = 0.46 * s / reach
        self._link_w = max(2.0, 0.06 * s)
        self._background = blank(self.size, WHITE)
        goal_y = self._center[1] - 1.0 * self._scale
        fill_rect(self._background, 0, goal_y, s, goal_y + max(1, round(s / 64)), GREY)

    def draw(self) -> np.ndarray:
        """Frame of the current (theta1, theta2); theta1 = 0 hangs straight down."""
        img = self._background.copy()
        if self.state is None:
            return img
        t1, t2 = float(self.state[0]), float(self.state[1])
        cx, cy = self._center
        k1, k2 = self._scale * self.LINK_LENGTH_1, self._scale * self.LINK_LENGTH_2
        elbow = (cx + k1 * math.sin(t1), cy + k1 * math.cos(t1))
        hand = (elbow[0] + k2 * math.sin(t1 + t2), elbow[1] + k2 * math.cos(t1 + t2))
        draw_segment(img, (cx, cy), elbow, self._link_w, (0, 90, 200))
        draw_segment(img, elbow, hand, self._link_w, (220, 40, 40))
        fill_circle(img, (cx, cy), 0.45 * self._link_w, BLACK)
        fill_circle(img, elbow, 0.45 * self._link_w, (230, 200, 0))
        return img


class PendulumPixelsEnv(PixelObsMixin, PendulumEnv):
    """`Pendulum-v1` seen as frames: the rod, plus a bar showing the last torque.

    The rod points up at theta = 0 and turns anticlockwise as theta grows (as in
    Gymnasium's own render). The bar along the bottom edge grows from the centre to
    the left for a positive (anticlockwise) torque and to the right for a negative one,
    its length proportional to the torque; it is absent right after reset.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}
    reset_options = ("x_init", "y_init")

    def __init__(self, size: int = 64, render_mode: str | None = None, g: float = 10.0) -> None:
        super().__init__(render_mode=render_mode, g=g)
        self._init_pixels(size, render_mode)
        s = float(self.size)
        self._center = (0.5 * s, 0.45 * s)
        self._rod_len = 0.36 * s
        self._rod_w = max(3.0, 0.09 * s)
        self._bar_y = (0.88 * s, 0.95 * s)
        self._bar_len = 0.4 * s
        self._background = blank(self.size, WHITE)

    def draw(self) -> np.ndarray:
        """Frame of the current angle and of the last torque applied."""
        img = self._background.copy()
        if self.state is None:
            return img
        theta = float(self.state[0])
        cx, cy = self._center
        tip = (cx - self._rod_len * math.sin(theta), cy - self._rod_len * math.cos(theta))
        draw_segment(img, (cx, cy), tip, self._rod_w, (204, 77, 77))
        fill_circle(img, (cx, cy), 0.3 * self._rod_w, BLACK)
        if self.last_u is not None:
            end = cx - self._bar_len * float(self.last_u) / self.max_torque
            fill_rect(img, min(cx, end), self._bar_y[0], max(cx, end), self._bar_y[1], (0, 120, 0))
        return img
