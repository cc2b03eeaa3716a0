"""The real pixel tasks in one place (design section 3): env classes, ids and a maker.

The classes live in `classic_pixels`, `minatar_pixels` and `atari_pixels`; their ids are
registered by `video_envs.registration` on ``import video_envs``.
"""

from video_envs.atari_pixels import AtariPixelsEnv
from video_envs.classic_pixels import AcrobotPixelsEnv, CartPolePixelsEnv, PendulumPixelsEnv
from video_envs.minatar_pixels import MinAtarPixelsEnv
from video_envs.registration import ATARI_TASK_IDS, TASK_IDS, make_real_env

__all__ = [
    "ATARI_TASK_IDS",
    "TASK_IDS",
    "AcrobotPixelsEnv",
    "AtariPixelsEnv",
    "CartPolePixelsEnv",
    "MinAtarPixelsEnv",
    "PendulumPixelsEnv",
    "make_real_env",
]
