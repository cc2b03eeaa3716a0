"""Action repeat: rewards summed, the last frame shown, stopping at an episode's end."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from video_envs.wrappers import ActionRepeat, make_task


class _Counter(gym.Env):
    """Observation: steps taken; reward: the action; terminates after `limit` steps."""

    observation_space = gym.spaces.Box(0, 100, (1,), np.float32)
    action_space = gym.spaces.Discrete(3)

    def __init__(self, limit: int = 5) -> None:
        self.limit, self.t = limit, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), float(action), self.t >= self.limit, False, {}


def test_action_repeat_sums_rewards_and_stops_at_termination():
    env = ActionRepeat(_Counter(limit=5), 2)
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(2)
    assert (obs[0], reward, terminated, info["repeated_steps"]) == (2, 4.0, False, 2)
    env.step(1)
    obs, reward, terminated, _, info = env.step(1)  # steps 5 (terminal) and no 6th
    assert (obs[0], reward, terminated, info["repeated_steps"]) == (5, 1.0, True, 1)


def test_action_repeat_on_a_real_task_keeps_the_time_limit_in_env_steps():
    import video_envs  # noqa: F401

    env = make_task("vwm/PendulumPixels-v0", action_repeat=2)  # 200 env steps per episode
    env.reset(seed=0)
    decisions, truncated = 0, False
    while not truncated:
        _, _, _, truncated, _ = env.step(np.zeros(1, np.float32))
        decisions += 1
    assert decisions == 100
    assert not isinstance(make_task("vwm/PendulumPixels-v0"), ActionRepeat)
    with pytest.raises(ValueError, match="action_repeat"):
        ActionRepeat(_Counter(), 0)
