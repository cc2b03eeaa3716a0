"""ALE (Atari) games with 64x64 RGB frames; needs the optional extra ``vwm[atari]``.

The emulator is ale-py's own ``AtariEnv`` with the ``v5`` settings (frameskip 4,
sticky actions 0.25, 108,000-frame cap); each 210x160 frame is resized with OpenCV's
area interpolation. ale-py and OpenCV are imported on construction, so the ids can be
registered without them and ``gym.make`` then says which extra to install.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from video_envs.draw import validate_size
from video_envs.validation import EpisodeGuard, check_action, check_options

INSTALL_HINT = "pip install 'vwm[atari]'"
"""Command that installs ale-py and OpenCV."""


def _import_atari() -> tuple[Any, Any]:
    """Return (ale_py's AtariEnv class, the cv2 module), or raise ImportError naming the extra."""
    try:
        import ale_py
        import cv2
        from ale_py.env import AtariEnv
    except ImportError as err:
        raise ImportError(
            f"The ALE pixel tasks need the optional extra: {INSTALL_HINT} "
            f"(missing module: {err.name})"
        ) from err
    gym.register_envs(ale_py)  # also makes ale-py's own ALE/... ids available
    return AtariEnv, cv2


class AtariPixelsEnv(gym.Env[np.ndarray, np.int64]):
    """An ALE game (ROM name such as ``pong``) observed as (size, size, 3) uint8 frames."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(
        self,
        game: str = "pong",
        size: int = 64,
        render_mode: str | None = None,
        frameskip: int = 4,
        repeat_action_probability: float = 0.25,
        full_action_space: bool = False,
        max_num_frames_per_episode: int = 108_000,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.size = validate_size(size)
        self.render_mode = render_mode
        atari_env_class, self._cv2 = _import_atari()
        self.ale_env = atari_env_class(
            game=game,
            obs_type="rgb",
            frameskip=frameskip,
            repeat_action_probability=repeat_action_probability,
            full_action_space=full_action_space,
            max_num_frames_per_episode=max_num_frames_per_episode,
        )
        self.action_space = self.ale_env.action_space
        self.observation_space = spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)
        self._seeded = False
        self._last = np.zeros((self.size, self.size, 3), np.uint8)
        self._episode = EpisodeGuard(type(self).__name__)

    def _resize(self, frame: np.ndarray) -> np.ndarray:
        self._last = self._cv2.resize(
            frame, (self.size, self.size), interpolation=self._cv2.INTER_AREA
        )
        return self._last

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new game; the emulator is reseeded from `seed` when one is given (no options)."""
        check_options(options, (), type(self).__name__)
        super().reset(seed=seed)
        inner_seed = None
        if seed is not None or not self._seeded:
            inner_seed = int(self.np_random.integers(2**31 - 1))
            self._seeded = True
        frame, info = self.ale_env.reset(seed=inner_seed)
        self._episode.started()
        return self._resize(frame), dict(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply one checked action (repeated `frameskip` times by the emulator)."""
        self._episode.check()
        action = check_action(action, self.action_space)
        frame, reward, terminated, truncated, info = self.ale_env.step(action)
        self._episode.stepped(bool(terminated), bool(truncated))
        return self._resize(frame), float(reward), bool(terminated), bool(truncated), dict(info)

    def render(self) -> np.ndarray:
        """The last frame (the same image as the observation)."""
        return self._last.copy()

    def close(self) -> None:
        """Close the emulator."""
        if hasattr(self, "ale_env"):
            self.ale_env.close()
