"""Gymnasium wrappers of real tasks: action repeat.

Action repeat (DreamerV2/V3 on control tasks, "frame skip" in Atari; Hafner et al. 2020,
arXiv:2010.02193): the agent decides every `repeat` env steps; the env applies the action
that many times, sums the rewards and shows the last frame. An episode that terminates or
is truncated inside a repeat stops there, so returns are those of the underlying env.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym


class ActionRepeat(gym.Wrapper):
    """Repeat each action `repeat` times, summing rewards, stopping at termination or truncation.

    ``info["repeated_steps"]`` counts the underlying steps actually taken.
    """

    def __init__(self, env: gym.Env, repeat: int) -> None:
        if int(repeat) < 1:
            raise ValueError(f"action_repeat must be >= 1, got {repeat}")
        super().__init__(env)
        self.repeat = int(repeat)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Apply `action` up to `repeat` times; the last observation and the summed reward."""
        total, taken = 0.0, 0
        while True:
            obs, reward, terminated, truncated, info = self.env.step(action)
            total, taken = total + float(reward), taken + 1
            if terminated or truncated or taken == self.repeat:
                break
        info = dict(info)
        info["repeated_steps"] = taken
        return obs, total, terminated, truncated, info


def make_task(task: str, action_repeat: int = 1, **kwargs: Any) -> gym.Env:
    """``gym.make(task, **kwargs)``, wrapped in `ActionRepeat` when `action_repeat` > 1."""
    env = gym.make(task, **kwargs)
    return ActionRepeat(env, action_repeat) if action_repeat != 1 else env
