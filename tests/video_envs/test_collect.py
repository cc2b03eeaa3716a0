"""`vwm collect`: recording into Minari, round trips, append, refusals, CLI."""

from __future__ import annotations

import os

import gymnasium as gym
import minari
import numpy as np
import pytest

import video_envs  # noqa: F401  (registers the vwm ids)
from benchmarks.cli import main
from video_envs.collect import TMP_PREFIX, CollectConfig, collect
from world_models.data import SequenceDataset, load_video_frames

CARTPOLE = "vwm/CartPolePixels-v0"
PENDULUM = "vwm/PendulumPixels-v0"
SIZE = 32


def _cfg(**kwargs) -> CollectConfig:
    base = dict(task=CARTPOLE, dataset="vwm/cartpole/test-v0", steps=150, num_envs=3,
                size=SIZE, progress=False)
    base.update(kwargs)
    return CollectConfig(**base)


def _stray(root) -> list[str]:
    """Temporary folders left anywhere under the Minari root."""
    return [d for d, _, _ in os.walk(root) if os.path.basename(d).startswith(TMP_PREFIX)]


class AlternatingPolicy:
    """A deterministic callable policy that logs the observations it was shown."""

    def __init__(self) -> None:
        self.calls = 0
        self.seen: list[np.ndarray] = []

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        self.seen.append(obs.copy())
        self.calls += 1
        return (np.arange(len(obs)) + self.calls) % 2


def _replay(task: str, episode, seed: int) -> None:
    """Re-run one stored episode in a fresh env and check every recorded transition."""
    env = gym.make(task, size=SIZE)
    obs, _ = env.reset(seed=seed)
    np.testing.assert_array_equal(episode.observations[0], obs)
    for t, action in enumerate(episode.actions):
        obs, reward, terminated, truncated, _ = env.step(action)
        np.testing.assert_array_equal(episode.observations[t + 1], obs)
        assert episode.rewards[t] == pytest.approx(reward)
        assert episode.terminations[t] == terminated
        if t < len(episode.actions) - 1:
            assert not (terminated or truncated), "an episode continues after its end"
    env.close()


def test_round_trip_matches_a_replay(_minari_root):
    policy = AlternatingPolicy()
    summary = collect(_cfg(steps=150), policy=policy)
    assert summary.steps == 150 and summary.total_episodes == summary.episodes
    assert policy.seen[0].shape == (3, SIZE, SIZE, 3)
    assert policy.calls == 50  # 150 steps / 3 envs: no step wasted on an autoreset
    dataset = minari.load_dataset("vwm/cartpole/test-v0")
    assert dataset.total_steps == 150 and dataset.total_episodes == summary.episodes
    assert not dataset.storage.metadata["jpeg_encoding"]
    seeds = [m["seed"] for m in dataset.storage.get_episode_metadata(range(summary.episodes))]
    assert len(set(seeds)) == len(seeds)
    last = {}
    for episode, seed in zip(dataset.iterate_episodes(), seeds, strict=True):
        _replay(CARTPOLE, episode, seed)
        last[episode.id] = bool(episode.terminations[-1] or episode.truncations[-1])
    assert all(last.values()), "every stored episode ends terminated or truncated"
    # the loader gives exactly the recorded data in the vwm alignment
    data = SequenceDataset.from_minari("vwm/cartpole/test-v0", expect_frame_shape=(SIZE, SIZE, 3))
    assert data.num_steps == 150 and data.task_id == CARTPOLE
    for episode, stored in zip(data.episodes(), dataset.iterate_episodes(), strict=True):
        np.testing.assert_array_equal(episode.frames[0].numpy(), stored.observations)
        np.testing.assert_array_equal(episode.actions[0, 1:].numpy(), stored.actions)
        np.testing.assert_array_equal(episode.rewards[0, 1:].numpy(), stored.rewards)
    assert _stray(_minari_root) == []


def test_existing_dataset_is_refused_then_appended(_minari_root):
    collect(_cfg(steps=60))
    with pytest.raises(FileExistsError, match="--append"):
        collect(_cfg(steps=60))
    first = minari.load_dataset("vwm/cartpole/test-v0")
    n_first = first.total_episodes
    assert first.total_steps == 60
    summary = collect(_cfg(steps=44, append=True))  # 44 = 14 * 3 + 2
    dataset = minari.load_dataset("vwm/cartpole/test-v0")
    assert dataset.total_steps == 104 and dataset.total_episodes == n_first + summary.episodes
    seeds = [m["seed"] for m in dataset.storage.get_episode_metadata(range(dataset.total_episodes))]
    assert len(set(seeds)) == len(seeds), "appending never repeats an episode seed"
    for episode, seed in list(zip(dataset.iterate_episodes(), seeds, strict=True))[n_first:]:
        _replay(CARTPOLE, episode, seed)
    assert SequenceDataset.from_minari("vwm/cartpole/test-v0").num_steps == 104
    # a frame-shape mismatch is refused and leaves the dataset untouched
    with pytest.raises(ValueError, match=r"\(32, 32, 3\).*\(16, 16, 3\)"):
        collect(_cfg(steps=30, append=True, size=16))
    assert minari.load_dataset("vwm/cartpole/test-v0").total_steps == 104
    assert _stray(_minari_root) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(task="vwm/NoSuchTask-v0"), ValueError, "vwm/NoSuchTask-v0"),
        (dict(task="CartPole-v1", size=None), ValueError, "uint8"),
        (dict(task="CartPole-v1"), ValueError, "size"),
        (dict(dataset=""), ValueError, "missing dataset"),
        (dict(dataset="not a valid id"), ValueError, "bad dataset id"),
        (dict(steps=0), ValueError, "steps"),
        (dict(num_envs=0), ValueError, "num_envs"),
        (dict(policy="no_such_model.zip"), ValueError, "policy"),
    ],
)
def test_bad_inputs(_minari_root, kwargs, error, match):
    with pytest.raises(error, match=match):
        collect(_cfg(**kwargs))
    assert minari.list_local_datasets() == {}
    assert _stray(_minari_root) == []


def test_failure_midway_leaves_nothing(_minari_root, monkeypatch):
    monkeypatch.setattr("video_envs.collect.FLUSH_STEPS", 20)  # some episodes already written

    def broken(obs):
        broken.calls += 1
        if broken.calls > 30:
            raise RuntimeError("policy crashed")
        return np.zeros(len(obs), dtype=np.int64)

    broken.calls = 0
    with pytest.raises(RuntimeError, match="crashed"):
        collect(_cfg(steps=150), policy=broken)
    assert minari.list_local_datasets() == {}
    assert _stray(_minari_root) == []
    with pytest.raises(ValueError, match="policy returned"):
        collect(_cfg(), policy=lambda obs: np.zeros((len(obs), 2)))
    assert _stray(_minari_root) == []


def test_continuous_task_jpeg_and_video(_minari_root, tmp_path):
    summary = collect(
        _cfg(task=PENDULUM, dataset="vwm/pendulum/random-v0", steps=120, num_envs=2,
             jpeg=True, video=str(tmp_path / "videos"), num_videos=2)
    )
    data = SequenceDataset.from_minari("vwm/pendulum/random-v0")
    assert (data.action_kind, data.action_dim) == ("continuous", 1)
    assert data.num_steps == 120 and data.frame_shape == (SIZE, SIZE, 3)
    assert data.actions.dtype == np.float32
    assert np.all(np.abs(data.actions) <= 2.0)
    assert minari.load_dataset("vwm/pendulum/random-v0").storage.metadata["jpeg_encoding"]
    # Pendulum episodes last 200 steps: the unfinished ones are stored, marked truncated
    dataset = minari.load_dataset("vwm/pendulum/random-v0")
    assert all(ep.truncations[-1] for ep in dataset.iterate_episodes())
    assert len(summary.videos) == 2
    for path in summary.videos:
        assert load_video_frames(path).shape == (61, 2 * SIZE, 2 * SIZE, 3)


def test_sb3_policy(_minari_root, tmp_path):
    from stable_baselines3 import PPO

    env = gym.make(CARTPOLE, size=16)
    PPO("MlpPolicy", env, n_steps=16, batch_size=16, device="cpu").save(tmp_path / "ppo.zip")
    env.close()
    summary = collect(_cfg(size=16, steps=40, policy=str(tmp_path / "ppo.zip")))
    assert summary.steps == 40
    metadata = minari.load_dataset("vwm/cartpole/test-v0").storage.metadata
    assert metadata["algorithm_name"] == "PPO ppo.zip"
    with pytest.raises(ValueError, match="observes"):  # a policy for other frames
        collect(_cfg(size=32, steps=40, policy=str(tmp_path / "ppo.zip"), dataset="vwm/b/c-v0"))


def test_cli(_minari_root, capsys):
    argv = ["collect", "--task", CARTPOLE, "--dataset", "vwm/cartpole/cli-v0", "--steps", "300",
            "--size", str(SIZE), "--num-envs", "4", "--no-progress"]
    assert main(argv) == 0
    assert "+300 steps" in capsys.readouterr().out
    assert minari.load_dataset("vwm/cartpole/cli-v0").total_steps == 300
    assert main(argv) == 1
    assert "already exists" in capsys.readouterr().err
    assert main([*argv, "--append", "--steps", "20"]) == 0
    assert minari.load_dataset("vwm/cartpole/cli-v0").total_steps == 320


def test_async_workers_write_the_same_dataset_as_sync(_minari_root, capsys):
    collect(_cfg(dataset="vwm/cartpole/sync-v0", steps=120, num_envs=3, seed=4))
    argv = ["collect", "--task", CARTPOLE, "--dataset", "vwm/cartpole/async-v0", "--steps", "120",
            "--size", str(SIZE), "--num-envs", "3", "--seed", "4", "--async", "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    sync, parallel = minari.load_dataset("vwm/cartpole/sync-v0"), minari.load_dataset("vwm/cartpole/async-v0")
    assert sync.total_steps == parallel.total_steps == 120
    assert sync.total_episodes == parallel.total_episodes
    assert sync.spec.env_spec == parallel.spec.env_spec
    for a, b in zip(sync.iterate_episodes(), parallel.iterate_episodes(), strict=True):
        for name in ("observations", "actions", "rewards", "terminations", "truncations"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert _stray(_minari_root) == []
