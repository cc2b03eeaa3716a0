"""Imagined Gymnasium envs (single and vector) and the latent-observation wrapper."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import video_envs  # noqa: F401  (registers the ids)
from tests.synthetic import SyntheticWorldModel, synthetic_context, synthetic_spec
from video_envs.imagined import WorldModelEnv, WorldModelVectorEnv
from video_envs.latent_wrapper import LatentObservationWrapper
from world_models.checkpoint import CheckpointError, ContextBank

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
OBS_MODES = ["pixels", "latent"]
POSITIONS = (-0.6, -0.2, 0.0, 0.3, 0.7)


def bank(model: SyntheticWorldModel) -> ContextBank:
    """Start contexts at several positions, so the drawn context shows in the obs."""
    frames, actions = zip(*(synthetic_context(model, 1, p) for p in POSITIONS))
    return ContextBank(torch.cat(frames), torch.cat(actions))


def make_env(obs_mode: str = "latent", noise: float = 0.0, **kwargs) -> WorldModelEnv:
    model = SyntheticWorldModel(noise=noise)
    return WorldModelEnv(model=model, contexts=bank(model), obs_mode=obs_mode, **kwargs)


def make_vec(num_envs: int, obs_mode: str = "latent", noise: float = 0.0, model=None, **kwargs):
    model = model or SyntheticWorldModel(noise=noise)
    return WorldModelVectorEnv(num_envs, model=model, contexts=bank(model), obs_mode=obs_mode, **kwargs)


@pytest.fixture
def tiny_ckpt(request):
    """The lead's `tiny_checkpoint` fixture, or a skip while it does not exist yet."""
    try:
        return request.getfixturevalue("tiny_checkpoint")
    except pytest.FixtureLookupError:
        pytest.skip("tiny_checkpoint fixture not defined yet")


# ---------------------------------------------------------------- checkers
@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_checkers_synthetic(obs_mode):
    env = make_env(obs_mode, noise=0.05)
    check_env(env)
    sb3_check_env(make_env(obs_mode, noise=0.05))
    model = SyntheticWorldModel(noise=0.05)
    made = gym.make("vwm/Imagined-v0", model=model, contexts=bank(model), obs_mode=obs_mode)
    check_env(made.unwrapped)
    check_env(made)


@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_checkers_tiny_checkpoint(tiny_ckpt, obs_mode):
    env = gym.make("vwm/Imagined-v0", checkpoint=str(tiny_ckpt), obs_mode=obs_mode)
    check_env(env.unwrapped)
    check_env(env)
    sb3_check_env(env.unwrapped)
    if obs_mode == "pixels":
        real = gym.make("vwm/CartPolePixels-v0")
        assert env.observation_space == real.observation_space
    assert env.unwrapped.max_episode_steps == gym.spec("vwm/CartPolePixels-v0").max_episode_steps
    vec = gym.make_vec("vwm/Imagined-v0", num_envs=4, checkpoint=str(tiny_ckpt), obs_mode=obs_mode)
    obs, _ = vec.reset(seed=0)
    obs, reward, terminated, truncated, info = vec.step(vec.action_space.sample())
    assert obs.shape == (4, *env.observation_space.shape) and reward.dtype == np.float32
    assert info["cont_prob"].shape == (4,)
    with pytest.raises(CheckpointError, match="Acrobot"):
        gym.make("vwm/Imagined-v0", checkpoint=str(tiny_ckpt), task="vwm/AcrobotPixels-v0")


def test_make_vec_uses_vector_entry_point():
    model = SyntheticWorldModel()
    vec = gym.make_vec("vwm/Imagined-v0", num_envs=8, model=model, contexts=bank(model), obs_mode="latent")
    assert isinstance(vec, WorldModelVectorEnv) and vec.spec.id == "vwm/Imagined-v0"
    assert vec.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    assert vec.autoreset_mode is AutoresetMode.NEXT_STEP
    obs, _ = vec.reset(seed=1)
    assert obs.shape == (8, 2) and obs.dtype == np.float32


# ---------------------------------------------------------------- seeding
def rollout(env: WorldModelEnv, seed: int, actions) -> list[np.ndarray]:
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for a in actions:
        obs, *_ = env.step(a)
        out.append(obs)
    return out


@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_same_seed_same_trajectory(obs_mode):
    env = make_env(obs_mode, noise=0.05)
    actions = np.random.default_rng(0).integers(0, 3, 20)
    first, second = rollout(env, 7, actions), rollout(env, 7, actions)
    np.testing.assert_array_equal(np.stack(first), np.stack(second))
    other = rollout(env, 8, actions)
    assert not np.array_equal(np.stack(first), np.stack(other))


def test_vector_row_equals_single_env_with_seed_plus_row():
    """Noisy dynamics: row i with reset(seed=s) == single env reset(seed=s+i), across autoresets."""
    n, seed, steps = 6, 11, 40
    vec = make_vec(n, max_episode_steps=7, noise=0.05)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 3, (steps, n))
    obs, _ = vec.reset(seed=seed)
    vec_obs, vec_rew, vec_done = [obs], [], []
    for a in actions:
        obs, rew, term, trunc, _ = vec.step(a)
        vec_obs.append(obs)
        vec_rew.append(rew)
        vec_done.append(term | trunc)
    starts = {float(o[0]) for o in vec_obs[0]}
    assert len(starts) > 1, "rows should start from different contexts"
    for i in range(n):
        env = make_env("latent", max_episode_steps=7, noise=0.05)
        obs, _ = env.reset(seed=seed + i)
        np.testing.assert_array_equal(obs, vec_obs[0][i])
        done = False
        for t, a in enumerate(actions[:, i]):
            if done:  # NEXT_STEP: the vector env resets on this step, ignoring the action
                obs, _ = env.reset()
                rew, done = 0.0, False
            else:
                obs, rew, term, trunc, _ = env.step(a)
                done = term or trunc
            np.testing.assert_array_equal(obs, vec_obs[t + 1][i])
            assert rew == pytest.approx(vec_rew[t][i])
            assert done == vec_done[t][i]


def test_rssm_vector_row_equals_single_env(tiny_checkpoint):
    """The RSSM samples its latents per row, so row i reproduces the single env (up to the
    float rounding of batched matrix products)."""
    import gymnasium as gym

    n, seed = 4, 5
    actions = np.random.default_rng(2).integers(0, 2, (12, n))
    vec = gym.make_vec("vwm/Imagined-v0", num_envs=n, checkpoint=tiny_checkpoint,
                       obs_mode="latent", autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    obs, _ = vec.reset(seed=seed)
    rows = [obs] + [vec.step(a)[0] for a in actions]
    for i in (0, 2):
        env = gym.make("vwm/Imagined-v0", checkpoint=tiny_checkpoint, obs_mode="latent")
        obs, _ = env.reset(seed=seed + i)
        single = [obs]
        for a in actions[:, i]:
            obs, _, term, trunc, _ = env.step(int(a))
            if term or trunc:
                break
            single.append(obs)
        np.testing.assert_allclose(np.stack(single), np.stack(rows)[: len(single), i], atol=1e-4)


def test_one_row_vector_env_equals_single_env_with_noise():
    actions = np.random.default_rng(1).integers(0, 3, 15)
    single = np.stack(rollout(make_env(noise=0.1), 3, actions))
    vec = make_vec(1, noise=0.1)
    obs, _ = vec.reset(seed=3)
    out = [obs[0]] + [vec.step(a[None])[0][0] for a in actions]
    np.testing.assert_array_equal(single, np.stack(out))


# ---------------------------------------------------------------- contexts
def test_reset_with_explicit_context():
    env = make_env("latent")
    model = env.model
    frames, actions = synthetic_context(model, 1, 0.5)
    obs, _ = env.reset(
        seed=0, options={"context": {"frames": frames[0].numpy(), "actions": actions[0].numpy()}}
    )
    assert obs[0] == pytest.approx(0.5, abs=0.02)
    obs, _ = env.reset(options={"context": {"frames": frames[0].numpy()}})  # actions optional
    assert obs[0] == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ValueError, match="frames must have shape"):
        env.reset(options={"context": {"frames": frames[0, :, :32].numpy()}})
    with pytest.raises(ValueError, match="uint8"):
        env.reset(options={"context": {"frames": frames[0].numpy().astype(np.float32)}})
    with pytest.raises(ValueError, match="actions must have shape"):
        env.reset(options={"context": {"frames": frames[0].numpy(), "actions": np.zeros(5, np.int64)}})


def test_vector_reset_with_contexts_and_mask():
    vec = make_vec(3)
    model = vec.model
    one, _ = synthetic_context(model, 1, -0.5)
    obs, _ = vec.reset(seed=0, options={"context": {"frames": one[0].numpy()}})  # broadcast
    np.testing.assert_allclose(obs[:, 0], -0.5, atol=0.02)
    per_row = torch.cat([synthetic_context(model, 1, p)[0] for p in (-0.4, 0.0, 0.4)]).numpy()
    obs, _ = vec.reset(options={"context": {"frames": per_row}})
    np.testing.assert_allclose(obs[:, 0], [-0.4, 0.0, 0.4], atol=0.02)
    vec.step(np.array([2, 2, 2]))
    mask = np.array([False, True, False])
    obs, _ = vec.reset(options={"context": {"frames": one[0].numpy()}, "reset_mask": mask})
    np.testing.assert_allclose(obs[:, 0], [-0.3, -0.5, 0.5], atol=0.02)
    with pytest.raises(ValueError, match="context frames"):
        vec.reset(options={"context": {"frames": per_row[:2]}})


# ---------------------------------------------------------------- time limit and termination
def test_truncation_exactly_at_limit():
    env = make_env(max_episode_steps=5)
    env.reset(seed=0)
    flags = [env.step(1)[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]
    made = gym.make(
        "vwm/Imagined-v0", model=env.model, contexts=env.core.contexts, obs_mode="latent", max_episode_steps=5
    )
    made.reset(seed=0)
    flags = [made.step(1)[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]


def test_time_limit_defaults():
    assert make_env().max_episode_steps == 1000
    env = make_env(task="vwm/CartPolePixels-v0")
    assert env.max_episode_steps == gym.spec("vwm/CartPolePixels-v0").max_episode_steps


def test_termination_from_continue_head():
    env = make_env()
    model = env.model
    frames, _ = synthetic_context(model, 1, 0.0)
    env.reset(seed=0, options={"context": {"frames": frames[0].numpy()}})
    for t in range(10):
        obs, reward, terminated, truncated, info = env.step(2)  # move right into the wall at 1.0
        assert isinstance(reward, float) and isinstance(terminated, bool)
        assert terminated == (t == 9)
    assert info["cont_prob"] == 0.0 and not truncated


@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_render_returns_decoded_frame(obs_mode):
    env = make_env(obs_mode)
    obs, _ = env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    if obs_mode == "pixels":
        np.testing.assert_array_equal(frame, obs)


# ---------------------------------------------------------------- autoreset
def wall_vec(mode: AutoresetMode) -> WorldModelVectorEnv:
    vec = make_vec(2, autoreset_mode=mode)
    frames = torch.cat([synthetic_context(vec.model, 1, p)[0] for p in (0.85, 0.0)]).numpy()
    vec.reset(seed=0, options={"context": {"frames": frames}})
    return vec


def test_next_step_autoreset():
    vec = wall_vec(AutoresetMode.NEXT_STEP)
    obs, reward, terminated, truncated, info = vec.step(np.array([2, 1]))
    assert terminated.tolist() == [False, False]
    obs, reward, terminated, truncated, info = vec.step(np.array([2, 1]))
    assert terminated.tolist() == [True, False] and obs[0, 0] == pytest.approx(1.0)
    obs, reward, terminated, truncated, info = vec.step(np.array([2, 1]))
    assert reward[0] == 0.0 and not terminated[0] and info["_cont_prob"].tolist() == [False, True]
    assert np.abs(np.array(POSITIONS) - obs[0, 0]).min() < 0.02


def test_same_step_autoreset_final_obs():
    vec = wall_vec(AutoresetMode.SAME_STEP)
    assert vec.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    vec.step(np.array([2, 1]))
    obs, reward, terminated, truncated, info = vec.step(np.array([2, 1]))
    assert terminated.tolist() == [True, False]
    assert info["_final_obs"].tolist() == [True, False] and info["final_obs"][1] is None
    assert info["final_obs"][0][0] == pytest.approx(1.0)
    assert info["final_info"]["cont_prob"][0] == 0.0 and info["_final_info"].tolist() == [True, False]
    assert np.abs(np.array(POSITIONS) - obs[0, 0]).min() < 0.02


def test_vector_render_and_pixels():
    vec = make_vec(3, obs_mode="pixels")
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (3, 64, 64, 3) and obs.dtype == np.uint8
    frames = vec.render()
    assert len(frames) == 3
    np.testing.assert_array_equal(np.stack(frames), obs)


# ---------------------------------------------------------------- action validation
@pytest.mark.parametrize("action", [1.0, np.float32(1), 3, -1, np.array([1]), "1", True])
def test_single_env_bad_actions(action):
    env = make_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"Discrete\(3\)"):
        env.step(action)


@pytest.mark.parametrize(
    "actions",
    [np.ones(4, np.float32), np.array([0, 1, 2, 3]), np.ones(3, np.int64), np.ones((4, 1), np.int64)],
)
def test_vector_env_bad_actions(actions):
    vec = make_vec(4)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"Discrete\(3\)"):
        vec.step(actions)


def test_continuous_actions():
    model = SyntheticWorldModel(spec=synthetic_spec("continuous"))
    env = WorldModelEnv(model=model, contexts=bank(model), obs_mode="latent")
    check_env(env)
    env.reset(seed=0)
    env.step(np.array([0.5], np.float32))
    for bad in (np.array([1.5], np.float32), np.array([0.1, 0.2], np.float32), np.array([np.nan])):
        with pytest.raises(ValueError, match="Box"):
            env.step(bad)


def test_constructor_errors():
    model = SyntheticWorldModel()
    with pytest.raises(ValueError, match="obs_mode"):
        WorldModelEnv(model=model, contexts=bank(model), obs_mode="rgb")
    with pytest.raises(ValueError, match="contexts"):
        WorldModelEnv(model=model)
    with pytest.raises(ValueError, match="exactly one"):
        WorldModelEnv()


# ---------------------------------------------------------------- latent wrapper on the real task
def cartpole_model() -> SyntheticWorldModel:
    return SyntheticWorldModel(spec=dataclasses.replace(synthetic_spec(), action_dim=2))


def test_latent_wrapper_matches_filter():
    model = cartpole_model()
    env = LatentObservationWrapper(gym.make("vwm/CartPolePixels-v0"), model=model)
    assert env.observation_space.shape == (2,)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs[1] == 0.0
    for t in range(3):
        obs, reward, terminated, truncated, _ = env.step(1)
        assert obs[1] == pytest.approx((t + 1) / 100)


def test_latent_wrapper_space_mismatch():
    with pytest.raises(CheckpointError, match="Discrete"):
        LatentObservationWrapper(gym.make("vwm/CartPolePixels-v0"), model=SyntheticWorldModel())
    small = SyntheticWorldModel(spec=dataclasses.replace(synthetic_spec(size=32), action_dim=2))
    with pytest.raises(CheckpointError, match="frames"):
        LatentObservationWrapper(gym.make("vwm/CartPolePixels-v0"), model=small)


def test_latent_wrapper_tiny_checkpoint(tiny_ckpt):
    env = LatentObservationWrapper(gym.make("vwm/CartPolePixels-v0"), checkpoint=tiny_ckpt)
    imagined = gym.make("vwm/Imagined-v0", checkpoint=str(tiny_ckpt), obs_mode="latent")
    assert env.observation_space == imagined.observation_space
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    with pytest.raises(CheckpointError):
        LatentObservationWrapper(gym.make("vwm/AcrobotPixels-v0"), checkpoint=tiny_ckpt)


def test_start_state_cache_matches_burn_in_and_follows_training():
    cached, uncached = make_vec(16), make_vec(16)
    uncached.core.cache_contexts = False
    obs_a, _ = cached.reset(seed=4)
    obs_b, _ = uncached.reset(seed=4)
    np.testing.assert_array_equal(obs_a, obs_b)
    for _ in range(3):
        actions = np.full(16, 2)
        np.testing.assert_array_equal(cached.step(actions)[0], uncached.step(actions)[0])
    version = cached.core._cache_version
    with torch.no_grad():
        cached.model.dummy.add_(1.0)  # an in-place parameter update, as an optimiser step
    cached.reset()
    assert cached.core._cache_version != version
    cached.model.register_buffer("stat", torch.zeros(1))  # a buffer, e.g. a running statistic
    cached.reset()
    version = cached.core._cache_version
    cached.model.stat.add_(1.0)
    cached.reset()
    assert cached.core._cache_version != version


def test_step_before_reset_is_a_clear_error():
    from gymnasium.error import ResetNeeded

    with pytest.raises(ResetNeeded, match="reset"):
        make_env("latent").step(1)
    with pytest.raises(ResetNeeded, match="reset"):
        make_vec(2).step(np.ones(2, dtype=np.int64))


def test_imagination_core_re_exports_the_io_helpers():
    import video_envs.imagination_core as core
    import video_envs.imagination_io as io

    moved = [name for name in vars(io) if not name.startswith("_") and name in core.__all__]
    assert "validate_actions" in moved and "load_source" in moved
    for name in moved:
        assert getattr(core, name) is getattr(io, name)
    assert set(core.__all__) <= set(vars(core))
