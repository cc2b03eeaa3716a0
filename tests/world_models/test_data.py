"""SequenceDataset: Minari loading, alignment, window sampling, holdout, contexts, videos."""

from __future__ import annotations

import gymnasium as gym
import minari
import numpy as np
import pytest
import torch
from minari.data_collector import EpisodeBuffer

from world_models.data import SequenceBatch, SequenceDataset

LENGTHS = (3, 10, 25, 6, 14)
"""Steps per synthetic episode."""


def _episode(e: int, n: int, shape=(8, 8, 3), continuous: bool = False) -> EpisodeBuffer:
    """Episode e of n steps; frame t carries (e, t) in its first two pixels."""
    obs = np.zeros((n + 1, *shape), dtype=np.uint8)  # (N + 1, H, W, C)
    obs.reshape(n + 1, -1)[:, 0] = e
    obs.reshape(n + 1, -1)[:, 1] = np.arange(n + 1)
    rng = np.random.default_rng(e)
    actions = rng.uniform(-2, 2, (n, 1)).astype(np.float32) if continuous else rng.integers(0, 3, n)
    terminations = np.zeros(n, dtype=bool)
    terminations[-1] = e % 2 == 0
    return EpisodeBuffer(
        seed=e,
        observations=obs,
        actions=actions,
        rewards=np.arange(n, dtype=np.float64) + 100 * e,
        terminations=terminations,
        truncations=~terminations & (np.arange(n) == n - 1),
    )


def _make_dataset(dataset_id="test/synth-v0", shape=(8, 8, 3), continuous=False, obs_space=None):
    buffers = [_episode(e, n, shape, continuous) for e, n in enumerate(LENGTHS)]
    action_space = gym.spaces.Box(-2, 2, (1,)) if continuous else gym.spaces.Discrete(3)
    minari.create_dataset_from_buffers(
        dataset_id,
        buffers,
        observation_space=obs_space or gym.spaces.Box(0, 255, shape, np.uint8),
        action_space=action_space,
        jpeg_encoding=False,
    )
    return buffers


def _decode(batch: SequenceBatch) -> tuple[np.ndarray, np.ndarray]:
    """(episode id, time index) of every frame: two (B, T) arrays."""
    flat = batch.frames.numpy().reshape(*batch.frames.shape[:2], -1)
    return flat[..., 0].astype(int), flat[..., 1].astype(int)


def test_from_minari_alignment():
    buffers = _make_dataset()
    data = SequenceDataset.from_minari("test/synth-v0")
    assert data.num_episodes == len(LENGTHS)
    assert data.num_steps == sum(LENGTHS)
    assert data.num_frames == sum(LENGTHS) + len(LENGTHS)
    assert data.frame_shape == (8, 8, 3)
    assert (data.action_kind, data.action_dim) == ("discrete", 3)
    assert data.holdout is None and data.train is data
    for buf, episode in zip(buffers, data.episodes(), strict=True):
        assert episode.frames.shape == (1, len(buf.rewards) + 1, 8, 8, 3)
        np.testing.assert_array_equal(episode.frames[0].numpy(), buf.observations)
        assert episode.actions[0, 0] == 0 and episode.rewards[0, 0] == 0
        np.testing.assert_array_equal(episode.actions[0, 1:].numpy(), buf.actions)
        np.testing.assert_allclose(episode.rewards[0, 1:].numpy(), buf.rewards)
        np.testing.assert_array_equal(episode.terminated[0, 1:].numpy(), buf.terminations)
        assert not episode.terminated[0, 0]
        assert episode.is_first[0, 0] and not episode.is_first[0, 1:].any()


def test_continuous_actions():
    buffers = _make_dataset("test/cont-v0", continuous=True)
    data = SequenceDataset.from_minari("test/cont-v0")
    assert (data.action_kind, data.action_dim) == ("continuous", 1)
    assert data.action_low == (-2.0,) and data.action_high == (2.0,)
    episode = data.episode(1)
    assert episode.actions.dtype == torch.float32 and episode.actions.shape == (1, 11, 1)
    np.testing.assert_allclose(episode.actions[0, 1:].numpy(), buffers[1].actions)
    batch = data.sample(4, 5, np.random.default_rng(0))
    assert batch.actions.shape == (4, 5, 1)


@pytest.mark.parametrize("seq_len", [1, 4, 12, 40])
def test_windows_stay_inside_one_episode(seq_len):
    _make_dataset()
    data = SequenceDataset.from_minari("test/synth-v0")
    batch = data.sample(256, seq_len, np.random.default_rng(seq_len))
    assert batch.frames.shape == (256, seq_len, 8, 8, 3)
    episode, t = _decode(batch)
    is_first, valid = batch.is_first.numpy(), batch.valid.numpy()
    assert (batch.has_action.numpy() == (valid & ~is_first)).all()
    assert (batch.has_reward.numpy() == valid).all()
    for row in range(256):
        n_real = int(valid[row].sum())
        assert valid[row, :n_real].all(), "padding only at the end"
        assert (episode[row] == episode[row, 0]).all(), "one episode per window"
        np.testing.assert_array_equal(t[row, :n_real], t[row, 0] + np.arange(n_real))
        if n_real < seq_len:  # short episode: padded with its last frame, marked not valid
            assert t[row, 0] == 0 and n_real == LENGTHS[episode[row, 0]] + 1
            assert (t[row, n_real:] == t[row, n_real - 1]).all() and not is_first[row, n_real:].any()
            assert not batch.actions[row, n_real:].any() and not batch.rewards[row, n_real:].any()
            assert not batch.terminated[row, n_real:].any()
        # is_first exactly where a real frame is an episode's first frame
        np.testing.assert_array_equal(is_first[row], t[row] == 0)


def test_terminal_frames_are_sampled_about_half_as_often_as_middle_ones():
    """Windows anchored on uniform frames: an episode's last frame is in about (T + 1) / 2
    windows per T a middle frame is in (windows placed uniformly inside the episode would
    hold it T times less often than a middle frame)."""
    _make_dataset()
    data = SequenceDataset.from_minari("test/synth-v0")
    seq_len, n = 4, 40_000
    batch = data.sample(n, seq_len, np.random.default_rng(0))
    episode, t = _decode(batch)
    valid = batch.valid.numpy()
    cover = np.zeros((len(LENGTHS), max(LENGTHS) + 1))
    np.add.at(cover, (episode[valid], t[valid]), 1)
    per_draw = cover * data.num_frames / n  # windows holding each frame, per draw of that frame
    long = 2  # episode of 25 steps: frames 5..20 are middle frames
    np.testing.assert_allclose(per_draw[long, 5:20].mean(), seq_len, rtol=0.05)
    np.testing.assert_allclose(per_draw[long, LENGTHS[long]], (seq_len + 1) / 2, rtol=0.1)
    assert (cover[np.arange(len(LENGTHS)), LENGTHS] > 0).all()  # every terminal frame is seen


def test_sampling_is_seeded():
    _make_dataset()
    data = SequenceDataset.from_minari("test/synth-v0")
    for make in (np.random.default_rng, lambda s: torch.Generator().manual_seed(s)):
        a = data.sample(8, 6, make(3))
        b = data.sample(8, 6, make(3))
        c = data.sample(8, 6, make(4))
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)
        assert not torch.equal(a.frames, c.frames)
    with pytest.raises(TypeError, match="generator"):
        data.sample(2, 3, 0)  # type: ignore[arg-type]


def test_holdout_is_disjoint():
    _make_dataset()
    train = SequenceDataset.from_minari("test/synth-v0", holdout_episodes=2)
    assert train.num_episodes == 3 and train.holdout.num_episodes == 2
    assert train.num_steps == sum(LENGTHS[2:]) and train.holdout.num_steps == sum(LENGTHS[:2])
    episode, _ = _decode(train.sample(512, 3, np.random.default_rng(0)))
    assert set(np.unique(episode)) == {2, 3, 4}
    episode, _ = _decode(train.holdout.sample(512, 3, np.random.default_rng(0)))
    assert set(np.unique(episode)) == {0, 1}
    contexts = train.contexts(64, 4, np.random.default_rng(0))
    assert set(np.unique(contexts.frames[:, :, 0, 0, 0].numpy())) <= {2, 3, 4}
    assert not np.shares_memory(train.frames, train.holdout.frames)
    with pytest.raises(ValueError, match="holdout_episodes"):
        SequenceDataset.from_minari("test/synth-v0", holdout_episodes=5)


def test_contexts():
    _make_dataset()
    data = SequenceDataset.from_minari("test/synth-v0")
    bank = data.contexts(32, 7, np.random.default_rng(0))
    assert bank.frames.shape == (32, 7, 8, 8, 3) and bank.frames.dtype == torch.uint8
    assert bank.actions.shape == (32, 7) and (bank.actions[:, 0] == 0).all()
    episode = bank.frames[:, :, 0, 0, 0].numpy()
    t = bank.frames[:, :, 0, 0, 1].numpy()
    assert (t == np.arange(7)).all(), "contexts start at an episode's first frame"
    assert set(np.unique(episode)) <= {1, 2, 4}, "only episodes longer than the context"
    with pytest.raises(ValueError, match="context length 30"):
        data.contexts(4, 30, np.random.default_rng(0))


def test_errors():
    _make_dataset()
    with pytest.raises(FileNotFoundError, match=r"test/synth-v0"):  # lists the local ids
        SequenceDataset.from_minari("test/missing-v0")
    with pytest.raises(ValueError, match=r"\(8, 8, 3\), expected \(64, 64, 3\)"):
        SequenceDataset.from_minari("test/synth-v0", expect_frame_shape=(64, 64, 3))
    minari.create_dataset_from_buffers(
        "test/vector-v0",
        [EpisodeBuffer(observations=np.zeros((3, 4), np.float32), actions=np.zeros(2, np.int64),
                       rewards=np.zeros(2), terminations=np.zeros(2, bool),
                       truncations=np.ones(2, bool))],
        observation_space=gym.spaces.Box(-1, 1, (4,)),
        action_space=gym.spaces.Discrete(2),
    )
    with pytest.raises(ValueError, match="uint8"):
        SequenceDataset.from_minari("test/vector-v0")
    data = SequenceDataset.from_minari("test/synth-v0")
    with pytest.raises(ValueError):
        data.sample(0, 4, np.random.default_rng(0))


def test_from_videos(tmp_path):
    from video_envs.video import write_video

    rng = np.random.default_rng(0)
    paths = []
    for i, n in enumerate((5, 9)):
        frames = rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
        paths.append(write_video(tmp_path / f"v{i}.gif", frames))
    data = SequenceDataset.from_videos(paths, size=16, holdout_episodes=1)
    assert not data.has_actions and data.frame_shape == (16, 16, 3)
    assert data.num_frames == 9 and data.holdout.num_frames == 5
    batch = data.holdout.sample(3, 4, np.random.default_rng(0))
    assert not batch.actions.any() and not batch.rewards.any()
    with pytest.raises(FileNotFoundError):
        SequenceDataset.from_videos([tmp_path / "missing.mp4"])


def test_end_windows_hold_each_episode_ending():
    from world_models.data import SequenceDataset

    frames = np.arange(9, dtype=np.uint8).reshape(9, 1, 1, 1).repeat(2, 1).repeat(2, 2)
    frames = np.ascontiguousarray(frames.repeat(3, 3))
    terminated = np.zeros(9, bool)
    terminated[[3, 8]] = True
    data = SequenceDataset(frames, np.zeros(9, np.int64), np.ones(9, np.float32), terminated,
                           np.array([0, 4, 6, 9]), "discrete", 2)
    ends = data.end_windows(3)
    assert ends.frames.shape[:2] == (2, 3)  # the 2-frame episode is too short
    assert ends.frames[:, :, 0, 0, 0].tolist() == [[1, 2, 3], [6, 7, 8]]
    assert ends.terminated[:, -1].all()
    assert data.end_windows(5) is None
