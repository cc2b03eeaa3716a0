"""Real pixel tasks and learned-world-model environments, registered with Gymnasium on import."""

from video_envs.registration import (
    ATARI_TASK_IDS,
    IMAGINED_ID,
    TASK_IDS,
    make_real_env,
    register_envs,
)

register_envs()

__all__ = ["ATARI_TASK_IDS", "IMAGINED_ID", "TASK_IDS", "make_real_env", "register_envs"]
