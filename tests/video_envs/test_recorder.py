"""The episode recorder: seeded resets, and a restore that continues the same real episodes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from video_envs.recorder import EpisodeRecorder

TASK = "vwm/CartPolePixels-v0"


def _envs() -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv([lambda: gym.make(TASK) for _ in range(2)])


def _run(recorder: EpisodeRecorder, actions: np.ndarray) -> list:
    finished = []
    for a in actions:
        finished += recorder.step(a)
    return finished


def test_restore_continues_the_same_episodes():
    actions = np.random.default_rng(0).integers(0, 2, size=(40, 2))
    whole = EpisodeRecorder(_envs(), seed=5)
    whole.reset()
    done_whole = _run(whole, actions)
    assert done_whole and all(len(e.obs) == len(e) + 1 for e in done_whole)
    assert all(e.seed >= 5 for e in done_whole) and whole.started > 2

    first = EpisodeRecorder(_envs(), seed=5)
    first.reset()
    done_first = _run(first, actions[:25])
    state = first.live_state()
    second = EpisodeRecorder(_envs(), seed=5)
    second.restore(state)
    np.testing.assert_array_equal(second.obs, first.obs)
    done_split = done_first + _run(second, actions[25:])
    assert [e.seed for e in done_split] == [e.seed for e in done_whole]
    for a, b in zip(done_split, done_whole):
        assert a.rewards == b.rewards and np.array_equal(np.stack(a.obs), np.stack(b.obs))
    aligned = done_whole[0].model_aligned(discrete=True)
    assert aligned["actions"][0] == 0 and len(aligned["frames"]) == len(aligned["rewards"])
