"""`vwm train-reward`: the reward predictor overlay fitted onto an existing checkpoint.

A tiny RSSM is trained on reward-free episodes of a moving bright column; the overlay is
then fitted on the same kind of episodes whose reward is a known function of the frames
(1 when the column is in the right half), so the composed env must replace the base's
rewards (all about zero) by ones that match that function on its own imagined frames.
The conformance suite checks the overlay family itself (it is registered).
"""

from __future__ import annotations

import os
import shutil

import gymnasium as gym
import minari
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from minari.data_collector import EpisodeBuffer
from safetensors.torch import load_file

from benchmarks.cli import main as vwm
from tests.conftest import collect_tiny
from world_models.checkpoint import CheckpointError, load_checkpoint, read_config
from world_models.train import TrainConfig, train_world_model
from world_models.train_reward import TrainRewardConfig, train_reward

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SIDE = 16
"""Frame side of the column data (the tiny RSSM needs a power of two)."""
FREE, REWARDED, SMALL, THREE_ACTIONS = ("test/column-free-v0", "test/column-v0", "test/column8-v0",
                                        "test/column3-v0")


def true_reward(frames: np.ndarray, side: int = SIDE) -> np.ndarray:
    """The reward of arriving at frames (..., H, W, C): 1 when the brightest column is in the
    right half."""
    columns = frames.astype(np.float32).mean(axis=(-3, -1))  # (..., W)
    return (columns.argmax(-1) >= side // 2).astype(np.float32)


def make_column_dataset(dataset_id: str, side: int = SIDE, rewarded: bool = True, actions: int = 2) -> str:
    """40 random walks of a bright column (action 1 right, 0 left) ending at the edges;
    rewards `true_reward` (or all zero and no terminations when not `rewarded`)."""
    rng = np.random.default_rng(0)
    buffers = []
    for e in range(40):
        xs, acts = [int(rng.integers(3, side - 3))], []
        while len(acts) < 20 and 0 < xs[-1] < side - 1:
            acts.append(int(rng.integers(0, 2)))
            xs.append(xs[-1] + 2 * acts[-1] - 1)
        obs = np.zeros((len(xs), side, side, 3), np.uint8)  # (N + 1, H, W, C)
        obs[np.arange(len(xs)), :, xs] = 255
        n = len(acts)
        term = np.isin(xs[1:], (0, side - 1)) & rewarded
        buffers.append(EpisodeBuffer(
            seed=e, observations=obs, actions=np.array(acts),
            rewards=true_reward(obs[1:], side).astype(np.float64) * rewarded,
            terminations=term, truncations=~term & (np.arange(n) == n - 1)))
    minari.create_dataset_from_buffers(
        dataset_id, buffers, observation_space=gym.spaces.Box(0, 255, (side, side, 3), np.uint8),
        action_space=gym.spaces.Discrete(actions), jpeg_encoding=False)
    return dataset_id


def reward_config(checkpoint, out, steps: int, **kw) -> TrainRewardConfig:
    return TrainRewardConfig(checkpoint=str(checkpoint), dataset=kw.pop("dataset", REWARDED), out=str(out),
                             preset="tiny", steps=steps, batch_size=8, seq_len=8, lr=3e-3,
                             holdout_episodes=4, eval_every=0, eval_horizon=5, checkpoint_every=steps,
                             tensorboard=False, progress=False, **kw)


@pytest.fixture(scope="module")
def column(tmp_path_factory) -> dict[str, str]:
    """Minari root with the column datasets, the base RSSM (trained without rewards) and
    the overlay fitted onto it."""
    root = tmp_path_factory.mktemp("column_minari")
    saved = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        make_column_dataset(FREE, rewarded=False)
        make_column_dataset(REWARDED)
        make_column_dataset(SMALL, side=8)
        make_column_dataset(THREE_ACTIONS, actions=3)
        runs = tmp_path_factory.mktemp("column_runs")
        torch.manual_seed(0)
        base = train_world_model(TrainConfig(
            dataset=FREE, out=str(runs / "base"), preset="tiny", steps=300, batch_size=8, seq_len=8,
            lr=3e-3, holdout_episodes=4, num_contexts=16, eval_every=0, checkpoint_every=300,
            tensorboard=False, progress=False))
        composed = train_reward(reward_config(base, runs / "overlay", 200))
    finally:
        if saved is not None:
            os.environ["MINARI_DATASETS_PATH"] = saved
    return {"root": str(root), "base": str(base), "composed": str(composed)}


def rollout(checkpoint: str, steps: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """Pixel observations (N, H, W, C) and rewards (N,) of random actions, seed 0, episodes
    cut by the time limit alone (never terminated), so that models with other termination
    heads reset at the same steps."""
    env = gym.make("vwm/Imagined-v0", checkpoint=checkpoint, max_episode_steps=25, terminate_threshold=0.0)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    frames, rewards = [], []
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(int(rng.integers(0, 2)))
        frames.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            env.reset()
    return np.stack(frames), np.asarray(rewards, np.float32)


def test_overlay_replaces_the_base_rewards_with_better_ones(column):
    config = read_config(column["composed"])
    assert config["spec"]["family"] == "overlay" and config["base_family"] == "rssm"
    assert config["base_checkpoint"] == str(load_checkpoint(column["base"]).path.resolve())
    assert config["dataset"] == REWARDED and config["eval_split"] == "held-out"
    assert config["eval"]["reward_mae"] < config["base_eval"]["reward_mae"]
    assert "termination_recall" in config["eval"]
    base_weights = load_file(os.path.join(column["base"], "model.safetensors"))
    composed_weights = load_file(os.path.join(column["composed"], "model.safetensors"))
    for key, value in base_weights.items():  # the generator stayed frozen
        assert torch.equal(composed_weights[f"generator.{key}"], value), key

    base_frames, base_rewards = rollout(column["base"])
    frames, rewards = rollout(column["composed"])
    np.testing.assert_array_equal(frames, base_frames)  # the same imagined frames ...
    truth = true_reward(frames)
    base_error, error = np.abs(base_rewards - truth).mean(), np.abs(rewards - truth).mean()
    assert not np.allclose(rewards, base_rewards)  # ... with other rewards
    assert error < 0.5 * base_error and error < 0.2, (error, base_error)


@pytest.mark.parametrize("obs_mode", ["pixels", "latent"])
def test_composed_checkpoint_passes_the_env_checker(column, obs_mode):
    env = gym.make("vwm/Imagined-v0", checkpoint=column["composed"], obs_mode=obs_mode, max_episode_steps=20)
    check_env(env.unwrapped)
    if obs_mode == "latent":
        spec = load_checkpoint(column["composed"]).spec
        base = load_checkpoint(column["base"]).spec
        hidden = spec.hparams["predictor"]["hidden"]
        assert env.observation_space.shape == (spec.feature_dim,) == (base.feature_dim + hidden,)


def test_train_reward_resume_is_exact(column, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", column["root"])
    straight = train_reward(reward_config(column["base"], tmp_path / "straight", 6))
    train_reward(reward_config(column["base"], tmp_path / "split", 3))
    resumed = train_reward(reward_config(column["base"], tmp_path / "split", 6, resume=True))
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert read_config(resumed)["base_eval"] == read_config(straight)["base_eval"]
    with pytest.raises(CheckpointError, match="cannot resume"):
        train_reward(reward_config(column["base"], tmp_path / "split", 8, resume=True, dataset=THREE_ACTIONS))


def test_cli_rejects_bad_checkpoints_and_mismatched_datasets(column, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", column["root"])
    broken = tmp_path / "broken"
    shutil.copytree(column["base"], broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    cases = [
        (column["base"], SMALL, ["has frames (8, 8, 3)", "models frames (16, 16, 3)"]),
        (column["base"], THREE_ACTIONS, ["discrete actions of size 3", "takes discrete actions of size 2"]),
        (column["base"], FREE, ["has no rewards to learn from"]),
        (str(tmp_path / "nowhere"), REWARDED, ["checkpoint not found"]),
        (str(broken), REWARDED, ["corrupt checkpoint"]),
    ]
    for i, (checkpoint, dataset, messages) in enumerate(cases):
        code = vwm(["train-reward", "--checkpoint", checkpoint, "--dataset", dataset, "--out",
                    str(tmp_path / f"out{i}"), "--preset", "tiny", "--steps", "1", "--no-progress"])
        err = capsys.readouterr().err
        assert code == 1, (dataset, err)
        for message in messages:
            assert message in err, (message, err)
        assert not (tmp_path / f"out{i}" / "checkpoint").exists()


def test_cli_overlay_on_cartpole_then_train_agent(tiny_checkpoint, tmp_path, capsys):
    dataset = collect_tiny(tmp_path / "minari")
    out = tmp_path / "reward"
    code = vwm(["train-reward", "--checkpoint", tiny_checkpoint, "--dataset", dataset, "--out", str(out),
                "--preset", "tiny", "--steps", "3", "--batch-size", "4", "--seq-len", "6",
                "--holdout-episodes", "2", "--eval-horizon", "3", "--generated-fraction", "0.5",
                "--predictor", '{"hidden": 8}', "--no-tensorboard", "--no-progress", "--device", "cpu"])
    printed = capsys.readouterr().out
    assert code == 0 and "base model fidelity" in printed and "checkpoint:" in printed
    loaded = load_checkpoint(out)
    assert loaded.task == "vwm/CartPolePixels-v0" and loaded.spec.hparams["predictor"]["hidden"] == 8
    assert loaded.spec.hparams["predictor"]["generated_fraction"] == 0.5
    assert torch.equal(loaded.contexts.frames, load_checkpoint(tiny_checkpoint).contexts.frames)
    code = vwm(["train-agent", "--algo", "a2c", "--checkpoint", str(out), "--obs-mode", "latent",
                "--steps", "32", "--num-envs", "4", "--out", str(tmp_path / "a2c"),
                "--eval-episodes", "1", "--no-progress"])
    assert code == 0, capsys.readouterr().err


def test_frozen_generator_stages_and_generated_rows():
    from world_models.base import ModelSpec
    from world_models.batch import SequenceBatch
    from world_models.families import build_model, make_spec
    from world_models.stages import select_parameters

    base = make_spec("rssm", (SIDE, SIDE, 3), "discrete", 2, preset="tiny")
    spec = make_spec("overlay", (SIDE, SIDE, 3), "discrete", 2, preset="tiny",
                     overrides={"base": base.to_dict(), "train_generator": False})
    assert spec.context_len == base.context_len and ModelSpec.from_dict(spec.hparams["base"]) == base
    torch.manual_seed(0)
    model = build_model(spec)
    (stage,) = model.training_stages()
    ((_, params),) = select_parameters(model, stage)
    assert {name.split(".")[0] for name, _ in params} == {"predictor"}
    assert not any(p.requires_grad for p in model.generator.parameters())
    model.train()
    assert not model.generator.training and model.predictor.training

    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (4, 5, SIDE, SIDE, 3), generator=g, dtype=torch.uint8)
    is_first = torch.zeros(4, 5, dtype=torch.bool)
    is_first[:, 0] = True
    batch = SequenceBatch(frames, torch.randint(0, 2, (4, 5), generator=g), torch.zeros(4, 5),
                          torch.zeros(4, 5, dtype=torch.bool), is_first).with_masks()
    generated = model.generated_next_frames(batch)  # tiny: half the rows
    assert torch.equal(generated[2:], frames[2:]) and torch.equal(generated[:, 0], frames[:, 0])
    assert not torch.equal(generated[:2, 1:], frames[:2, 1:])
    with pytest.raises(ValueError, match="differ from its base model's"):
        make_spec("overlay", (8, 8, 3), "discrete", 2, preset="tiny", overrides={"base": base.to_dict()})
