"""The dream return starts where the real evaluation starts: a real prefix, then imagination."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from benchmarks import dream_return as dr
from video_envs.imagined import WorldModelEnv

TASK = "vwm/CartPolePixels-v0"


class Constant:
    """Always the same discrete action; counts its resets (an episode-state policy)."""

    def __init__(self, action: int) -> None:
        self.action, self.resets = action, 0

    def reset(self) -> None:
        self.resets += 1

    def predict(self, obs, episode_start=None, deterministic=True):
        return np.full(len(obs), self.action, dtype=np.int64), None


def test_real_prefix_is_the_policys_own_start_of_each_real_episode():
    policy = Constant(1)
    frames, actions, total, ended = dr.real_prefix(policy, TASK, [7, 8], steps=3)
    assert frames.shape == (2, 4, 64, 64, 3) and frames.dtype == np.uint8
    assert actions.tolist() == [[0, 1, 1, 1]] * 2  # actions[:, t] led into frames[:, t]
    assert total.tolist() == [3.0, 3.0] and not ended.any() and policy.resets == 1
    for row, seed in enumerate((7, 8)):  # the very frames the real task shows under that seed
        env = gym.make(TASK)
        obs, _ = env.reset(seed=seed)
        assert np.array_equal(frames[row, 0], obs)
        for t in range(1, 4):
            obs, *_ = env.step(1)
            assert np.array_equal(frames[row, t], obs)


def test_an_episode_that_ends_in_the_prefix_keeps_its_real_return():
    # pushing right the whole time topples CartPole in about 10 steps
    frames, actions, total, ended = dr.real_prefix(Constant(1), TASK, [0], steps=40)
    assert ended.all() and 5 <= total[0] < 40
    last = int(total[0])  # one reward per step alive: frames after the end repeat the last
    assert all(np.array_equal(frames[0, t], frames[0, last]) for t in range(last, 41))


def test_dream_return_adds_the_real_prefix_to_one_imagined_episode_per_seed(tiny_checkpoint, monkeypatch):
    limit = 12
    monkeypatch.setattr(dr, "task_time_limit", lambda task, repeat=1: limit)
    policy = Constant(0)
    got = dr.dream_return(policy, policy, tiny_checkpoint, TASK, episodes=3, seed=5, obs_mode="latent")
    expected = []
    for seed in (5, 6, 7):  # unbatched: a single env per seed, the same context and row seed
        frames, actions, total, ended = dr.real_prefix(policy, TASK, [seed], steps=3)
        env = WorldModelEnv(checkpoint=tiny_checkpoint, obs_mode="latent", max_episode_steps=limit - 3)
        assert env.model.spec.context_len == 4  # the tiny preset: 3 real decisions
        env.reset(seed=seed, options={"context": {"frames": frames[0], "actions": actions[0]}})
        steps, done = 0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(0)
            total[0] += reward
            steps, done = steps + 1, terminated or truncated
        assert steps <= limit - 3
        expected.append(total[0])
    assert got == pytest.approx(float(np.mean(expected)), rel=1e-5)


def test_no_imagined_steps_when_the_prefix_fills_the_time_limit(tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(dr, "task_time_limit", lambda task, repeat=1: 3)
    policy = Constant(0)
    assert dr.dream_return(policy, policy, tiny_checkpoint, TASK, episodes=2, seed=0) == 3.0
