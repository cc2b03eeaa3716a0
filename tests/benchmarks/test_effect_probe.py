"""The effect probe: which actions a frame pair can tell apart, and its scores."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.effect_probe import effect_episodes, effect_scores


def test_effect_scores_count_an_action_with_the_same_effect_as_right():
    same = np.array([[True, True, True],  # sticky or blocked: any action is right
                     [True, False, False],
                     [False, True, True],  # 1 and 2 do the same here
                     [False, False, True]])
    scores = effect_scores(same, np.array([2, 0, 2, 0]))
    assert scores["accuracy"] == 0.75
    assert scores["identifiable"] == 0.75 and scores["accuracy_identifiable"] == pytest.approx(2 / 3)
    assert scores["chance"] == 0.75  # always 2: right on rows 0, 2, 3
    assert scores["chance_identifiable"] == pytest.approx(2 / 3)
    assert np.isnan(effect_scores(np.zeros((0, 3), bool), np.zeros(0, np.int64))["accuracy"])


def test_freeway_chicken_moves_at_most_every_third_step():
    """MinAtar Freeway's chicken moves only when its move timer is 0 (3 steps after a move),
    so in most transitions up, down and no-op give the same frame."""
    (episode, *_) = effect_episodes("vwm/MinAtarFreewayMinimal40px-v0", 300, seed=3)
    t = len(episode.actions)
    assert episode.frames.shape == (t + 1, 40, 40, 3) and episode.same.shape == (t, 3)
    assert episode.same[np.arange(t), episode.actions].all()  # the taken action gives its own frame
    identifiable = ~episode.same.all(1)
    assert 0.1 < identifiable.mean() < 0.6


def test_breakout_effects_replay_the_game_and_tell_the_paddle_moves_apart():
    episodes = effect_episodes("vwm/MinAtarBreakoutMinimal40px-v0", 60, seed=0)
    same = np.concatenate([e.same for e in episodes])
    assert sum(len(e.actions) for e in episodes) >= 60
    assert (~same.any(1)).sum() == 0  # every row holds at least the taken action
    assert (same.sum(1) == 1).mean() > 0.5  # left, right and no-op differ in most steps
    again = effect_episodes("vwm/MinAtarBreakoutMinimal40px-v0", 60, seed=0)
    for a, b in zip(episodes, again, strict=True):
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_array_equal(a.same, b.same)


def test_fresh_episodes_become_a_dataset_with_the_actions_that_led_into_each_frame():
    from benchmarks.effect_probe import as_dataset

    episodes = effect_episodes("vwm/MinAtarBreakoutMinimal40px-v0", 20, seed=1)
    data = as_dataset(episodes, 3)
    assert data.num_episodes == len(episodes)
    assert data.episode_lengths.tolist() == [len(e.frames) for e in episodes]
    first = data.episode(0)
    np.testing.assert_array_equal(first.frames[0].numpy(), episodes[0].frames)
    np.testing.assert_array_equal(first.actions[0, 1:].numpy(), episodes[0].actions)
