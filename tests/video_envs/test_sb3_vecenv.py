"""The native SB3 VecEnv over imagination, and SB3 algorithms training on it."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DQN, PPO, SAC
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

import video_envs  # noqa: F401
from tests.synthetic import SyntheticWorldModel, synthetic_context, synthetic_spec
from video_envs.imagined import WorldModelVectorEnv
from video_envs.latent_wrapper import LatentObservationVecEnv
from video_envs.sb3 import WorldModelSB3VecEnv
from world_models.checkpoint import ContextBank

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def bank(model: SyntheticWorldModel) -> ContextBank:
    frames, actions = zip(*(synthetic_context(model, 1, p) for p in (-0.5, 0.0, 0.5)))
    return ContextBank(torch.cat(frames), torch.cat(actions))


def make(num_envs: int = 4, obs_mode: str = "latent", model=None, **kwargs) -> WorldModelSB3VecEnv:
    model = model or SyntheticWorldModel()
    return WorldModelSB3VecEnv(num_envs, model=model, contexts=bank(model), obs_mode=obs_mode, **kwargs)


@pytest.fixture
def tiny_ckpt(request):
    try:
        return request.getfixturevalue("tiny_checkpoint")
    except pytest.FixtureLookupError:
        pytest.skip("tiny_checkpoint fixture not defined yet")


def test_truncation_terminal_observation_and_autoreset():
    venv = make(3, max_episode_steps=4)
    venv.seed(0)
    obs = venv.reset()
    start = obs.copy()
    for _ in range(4):
        obs, rewards, dones, infos = venv.step(np.ones(3, dtype=np.int64))  # stay in place
        assert rewards.dtype == np.float32 and all("cont_prob" in info for info in infos)
    assert dones.all()
    burned = (venv.model.spec.context_len - 1) / 100  # t after burn-in: frames since the context's first
    for i, info in enumerate(infos):
        assert info["TimeLimit.truncated"] is True
        np.testing.assert_allclose(info["terminal_observation"], [start[i, 0], burned + 0.04], atol=1e-6)
    np.testing.assert_allclose(obs[:, 1], burned)  # fresh episodes


def test_termination_is_not_time_limit():
    model = SyntheticWorldModel()
    venv = WorldModelSB3VecEnv(2, model=model, contexts=synthetic_context(model, 1, 0.85), obs_mode="pixels")
    venv.reset()
    venv.step(np.array([2, 1]))
    obs, rewards, dones, infos = venv.step(np.array([2, 1]))
    assert dones.tolist() == [True, False]
    assert infos[0]["TimeLimit.truncated"] is False and "terminal_observation" not in infos[1]
    assert infos[0]["terminal_observation"].shape == (64, 64, 3)
    assert infos[0]["terminal_observation"][0].argmax(axis=0)[0] == 63  # at the wall
    assert obs.shape == (2, 64, 64, 3) and obs[0, 0].argmax(axis=0)[0] != 63  # reset


def test_seed_matches_vector_env():
    model = SyntheticWorldModel(noise=0.05)
    venv = make(4, model=model)
    vec = WorldModelVectorEnv(4, model=model, contexts=bank(model), obs_mode="latent")
    assert venv.seed(5) == [5, 6, 7, 8]
    obs = venv.reset()
    expected, _ = vec.reset(seed=5)
    np.testing.assert_array_equal(obs, expected)
    actions = np.array([0, 1, 2, 1])
    np.testing.assert_array_equal(venv.step(actions)[0], vec.step(actions)[0])


def test_reset_options_context():
    venv = make(2)
    frames, actions = synthetic_context(venv.model, 1, 0.2)
    venv.set_options({"context": {"frames": frames[0].numpy(), "actions": actions[0].numpy()}})
    obs = venv.reset()
    np.testing.assert_allclose(obs[:, 0], 0.2, atol=0.02)


def test_attr_methods():
    venv = make(3)
    assert venv.get_attr("render_mode") == ["rgb_array"] * 3
    assert venv.get_attr("obs_mode", indices=[0]) == ["latent"]
    venv.set_attr("foo", 1)
    assert venv.get_attr("foo") == [1, 1, 1]
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * 3
    venv.reset()
    assert len(venv.env_method("get_images", indices=[1, 2])) == 2
    assert venv.render().ndim == 3


@pytest.mark.parametrize("actions", [np.ones(4, np.float32), np.array([0, 1, 2, 3]), np.ones(3, np.int64)])
def test_bad_actions(actions):
    venv = make(4)
    venv.reset()
    with pytest.raises(ValueError, match=r"Discrete\(3\)"):
        venv.step(actions)


@pytest.mark.parametrize("algo", [PPO, A2C, DQN])
def test_discrete_algorithms_train(algo):
    venv = VecMonitor(make(8, max_episode_steps=30))
    kwargs = {"n_steps": 16} if algo is not DQN else {"learning_starts": 32, "buffer_size": 1000}
    if algo is PPO:
        kwargs.update(batch_size=64, n_epochs=2)
    model = algo("MlpPolicy", venv, device="cpu", seed=0, **kwargs)
    model.learn(256)


def test_ppo_pixels_and_sac_continuous():
    PPO(
        "CnnPolicy",
        make(4, obs_mode="pixels", max_episode_steps=20),
        n_steps=16,
        batch_size=32,
        n_epochs=1,
        device="cpu",
        seed=0,
    ).learn(64)
    model = SyntheticWorldModel(spec=synthetic_spec("continuous"))
    venv = make(4, model=model, max_episode_steps=20)
    SAC("MlpPolicy", venv, learning_starts=16, batch_size=32, buffer_size=500, device="cpu", seed=0).learn(96)


def test_ppo_on_tiny_checkpoint(tiny_ckpt):
    venv = WorldModelSB3VecEnv(8, checkpoint=tiny_ckpt, obs_mode="latent")
    PPO("MlpPolicy", venv, n_steps=16, batch_size=64, n_epochs=1, device="cpu", seed=0).learn(256)


def test_latent_vecenv_on_real_envs():
    model = SyntheticWorldModel(spec=dataclasses.replace(synthetic_spec(), action_dim=2))
    real = DummyVecEnv([lambda: gym.make("vwm/CartPolePixels-v0", max_episode_steps=3) for _ in range(2)])
    venv = LatentObservationVecEnv(real, model=model)
    obs = venv.reset()
    assert obs.shape == (2, 2) and obs.dtype == np.float32
    for _ in range(3):
        obs, rewards, dones, infos = venv.step(np.array([1, 0]))
    assert dones.all()
    assert infos[0]["terminal_observation"].shape == (2,)
    assert infos[0]["terminal_observation"][1] == pytest.approx(0.03)
    np.testing.assert_array_equal(obs[:, 1], 0.0)
