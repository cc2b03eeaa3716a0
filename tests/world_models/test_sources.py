"""Training sources: videos, --ignore-actions, mixing, the on-disk frame cache, masks."""

from __future__ import annotations

import gymnasium as gym
import minari
import numpy as np
import pytest
import torch
from minari.data_collector import EpisodeBuffer

from benchmarks.cli import main as vwm
from world_models.checkpoint import load_checkpoint
from world_models.data import SequenceDataset
from world_models.sources import DEFAULT_VIDEO_ACTION_SPACE, load_sources, parse_action_space
from world_models.storage import FrameFile, cache_dir

SIDE = 16
"""Frame side of the test data (the tiny RSSM needs a power of two)."""


def _make_minari(dataset_id="test/labelled-v0", lengths=(9, 12, 15, 11)) -> str:
    """Episodes whose frames carry marker 200 in pixel 0; random actions and rewards."""
    rng = np.random.default_rng(0)
    buffers = []
    for e, n in enumerate(lengths):
        obs = rng.integers(0, 100, (n + 1, SIDE, SIDE, 3), dtype=np.uint8)
        obs[:, 0, 0, 0] = 200
        terminations = np.zeros(n, dtype=bool)
        terminations[-1] = True
        buffers.append(EpisodeBuffer(
            seed=e, observations=obs, actions=rng.integers(0, 3, n), rewards=rng.random(n) + 1,
            terminations=terminations, truncations=np.zeros(n, dtype=bool),
        ))
    minari.create_dataset_from_buffers(
        dataset_id, buffers, observation_space=gym.spaces.Box(0, 255, (SIDE, SIDE, 3), np.uint8),
        action_space=gym.spaces.Discrete(3), jpeg_encoding=False,
    )
    return dataset_id


def _write_videos(folder, count=3, length=12, suffix=".mp4"):
    """`count` videos of 32x32 frames (marker pixel 0 dark) in `folder`."""
    from video_envs.video import write_video

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        frames = rng.integers(100, 256, (length, 32, 32, 3), dtype=np.uint8)
        frames[:, :4, :4] = 0
        write_video(folder / f"clip{i}{suffix}", frames, fps=10)
    return folder


def test_parse_action_space():
    assert parse_action_space("discrete:4") == ("discrete", 4, None, None)
    assert parse_action_space("continuous:2") == ("continuous", 2, (-1.0, -1.0), (1.0, 1.0))
    assert parse_action_space("box:1:0:5").high == (5.0,)
    for bad in ("discrete", "discrete:0", "cont:2", "continuous:2:1:0"):
        with pytest.raises(ValueError, match="--action-space"):
            parse_action_space(bad)


def test_frame_cache_matches_memory_and_is_rebuilt():
    dataset = _make_minari()
    cached = SequenceDataset.from_minari(dataset, holdout_episodes=1)
    memory = SequenceDataset.from_minari(dataset, holdout_episodes=1, cache=False)
    assert isinstance(cached.frames, FrameFile) and isinstance(memory.frames, np.ndarray)
    assert (cache_dir(dataset) / "frames.u8").is_file()
    for seed in range(3):
        a = cached.sample(5, 7, np.random.default_rng(seed))
        b = memory.sample(5, 7, np.random.default_rng(seed))
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)
    assert np.array_equal(np.asarray(cached.holdout.frames), memory.holdout.frames)
    assert torch.equal(cached.episode(-1).frames, memory.episode(-1).frames)
    (cache_dir(dataset) / "meta.json").write_text("{}")  # stale: rebuilt on the next load
    again = SequenceDataset.from_minari(dataset)
    assert again.num_frames == sum((9, 12, 15, 11)) + 4


def test_ignore_actions_masks():
    data = SequenceDataset.from_minari(_make_minari(), ignore_actions=True)
    assert not data.has_actions and data.action_dim == 3  # the space still sizes the model
    batch = data.sample(16, 20, np.random.default_rng(0))
    assert not batch.has_action.any() and not batch.actions.any()
    assert torch.equal(batch.has_reward, batch.valid) and not batch.valid.all()  # padded
    assert batch.rewards[batch.valid & ~batch.is_first].min() >= 1  # rewards stay real


def test_mixed_sources_draw_by_frames_with_their_masks(tmp_path):
    folder = _write_videos(tmp_path / "videos", count=2, length=40)
    data = load_sources(_make_minari(), [str(folder)], holdout_episodes=1)
    labelled, clips = data.sources
    assert clips.frame_shape == (SIDE, SIDE, 3) and (clips.action_kind, clips.action_dim) == ("discrete", 3)
    batch = data.sample(400, 6, np.random.default_rng(0))
    from_minari = batch.frames[:, 0, 0, 0, 0] == 200  # (B,) the marker pixel
    assert torch.equal(batch.has_reward.any(1), from_minari)
    assert torch.equal(batch.has_action[~from_minari], torch.zeros_like(batch.has_action[~from_minari]))
    assert batch.has_action[from_minari].any()
    share = labelled.num_frames / data.num_frames
    assert abs(float(from_minari.float().mean()) - share) < 0.1
    assert data.holdout is labelled.holdout and data.task_id is None
    with pytest.raises(ValueError, match="differs"):
        load_sources("test/labelled-v0", action_space="discrete:5")
    with pytest.raises(ValueError, match="nothing to train on"):
        load_sources()


def test_a_few_labelled_episodes_beside_action_free_data():
    """--ignore-actions --label-episodes 1: the first training episode keeps its actions and
    gives a quarter of every batch; the rest of the data stays action-free."""
    dataset = _make_minari()
    data = load_sources(dataset, ignore_actions=True, holdout_episodes=1, label_episodes=1)
    free, labelled = data.sources
    assert not free.has_actions and labelled.has_actions and labelled.num_episodes == 1
    assert labelled.frames.shape[0] == 13  # training episode 0 = the dataset's second (12 steps)
    np.testing.assert_allclose(data.probabilities, [0.75, 0.25])
    batch = data.sample(800, 4, np.random.default_rng(0))
    marked = batch.has_action.any(1)  # (B,) rows from the labelled episode
    assert abs(float(marked.float().mean()) - 0.25) < 0.05
    assert data.contexts(2, 3, np.random.default_rng(0)).frames.shape == (2, 3, SIDE, SIDE, 3)
    with pytest.raises(ValueError, match="--ignore-actions"):
        load_sources(dataset, label_episodes=1)
    with pytest.raises(ValueError, match="label-episodes 9"):
        load_sources(dataset, ignore_actions=True, holdout_episodes=1, label_episodes=9)


def test_train_from_video_folder_without_actions(tmp_path):
    folder = _write_videos(tmp_path / "videos")  # three mp4 files
    extra = _write_videos(tmp_path / "extra", count=2, suffix=".gif")
    out = tmp_path / "run"
    code = vwm([
        "train-model", "--videos", str(folder), "--videos",
        f"{extra / 'clip0.gif'},{extra / 'clip1.gif'}", "--out", str(out), "--preset", "tiny",
        "--steps", "2", "--batch-size", "2", "--seq-len", "6", "--holdout-episodes", "1",
        "--num-contexts", "2", "--eval-every", "0", "--video-size", str(SIDE), "--no-tensorboard",
        "--no-progress",
    ])
    assert code == 0
    loaded = load_checkpoint(out)
    spec = loaded.spec
    assert (spec.action_kind, spec.action_dim) == DEFAULT_VIDEO_ACTION_SPACE[:2]
    assert spec.frame_shape == (SIDE, SIDE, 3) and loaded.task is None
    assert len(loaded.config["videos"]) == 2 and loaded.config["sources"][0]["videos"] == 5
    assert loaded.config["eval"] and all(k.startswith(("psnr", "ssim")) for k in loaded.config["eval"])
    state = loaded.model.init_state(loaded.contexts.frames[:1], loaded.contexts.actions[:1])
    step = loaded.model.step(state, torch.zeros(1, dtype=torch.int64), torch.Generator())
    assert loaded.model.decode(step.state).shape == (1, SIDE, SIDE, 3)  # a generator


def test_train_minari_ignoring_actions_plus_videos(tmp_path):
    from world_models.train import TrainConfig, train_world_model

    folder = _write_videos(tmp_path / "videos", suffix=".gif")
    dataset = _make_minari()
    path = train_world_model(TrainConfig(
        dataset=dataset, videos=(str(folder),), ignore_actions=True, out=str(tmp_path / "run"),
        preset="tiny", steps=2, batch_size=3, seq_len=6, holdout_episodes=1, num_contexts=2,
        eval_every=0, tensorboard=False, progress=False,
    ))
    loaded = load_checkpoint(path)
    assert loaded.spec.action_dim == 3 and loaded.config["dataset"] == dataset
    assert [s["has_actions"] for s in loaded.config["sources"]] == [False, False]
    assert "reward_mae" in loaded.config["eval"]  # the dataset's rewards are real
