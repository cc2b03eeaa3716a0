"""Real pixel tasks: registration, Gymnasium/SB3 checkers, determinism and frame content."""

from __future__ import annotations

import importlib.util
import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import video_envs
from video_envs import ATARI_TASK_IDS, IMAGINED_ID, TASK_IDS, make_real_env, register_envs
from video_envs.minatar_pixels import PALETTE

CLASSIC_IDS = ("vwm/CartPolePixels-v0", "vwm/AcrobotPixels-v0", "vwm/PendulumPixels-v0")
HAS_ATARI = importlib.util.find_spec("ale_py") is not None


def _make(env_id: str, **kwargs) -> gym.Env:
    return gym.make(env_id, render_mode="rgb_array", **kwargs)


def _rollout(env_id: str, seed: int, steps: int = 8) -> list[np.ndarray]:
    env = _make(env_id)
    env.action_space.seed(seed)
    frames = [env.reset(seed=seed)[0]]
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        frames.append(obs)
        if terminated or truncated:
            break
    env.close()
    return frames


def test_registered_ids() -> None:
    assert set(CLASSIC_IDS) <= set(TASK_IDS)
    assert {f"vwm/MinAtar{g}-v0" for g in ("Asterix", "Breakout", "Freeway", "Seaquest",
                                           "SpaceInvaders")} <= set(TASK_IDS)
    for env_id in TASK_IDS + ATARI_TASK_IDS + (IMAGINED_ID,):
        spec = gym.spec(env_id)
        assert isinstance(spec.entry_point, str)
        json.dumps(spec.kwargs)
    assert gym.spec("vwm/CartPolePixels-v0").max_episode_steps == 500
    assert gym.spec("vwm/AcrobotPixels-v0").max_episode_steps == 500
    assert gym.spec("vwm/PendulumPixels-v0").max_episode_steps == 200
    imagined = gym.spec(IMAGINED_ID)
    assert imagined.entry_point == "video_envs.imagined:WorldModelEnv"
    assert imagined.vector_entry_point == "video_envs.imagined:WorldModelVectorEnv"


def test_register_envs_is_idempotent() -> None:
    before = len(gym.registry)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_envs()
        register_envs()
    assert len(gym.registry) == before
    assert video_envs.TASK_IDS is TASK_IDS


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_observation_space(env_id: str) -> None:
    env = _make(env_id)
    side = 40 if env_id.endswith("40px-v0") else 64
    assert env.observation_space == gym.spaces.Box(0, 255, (side, side, 3), np.uint8)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.uint8 and obs.shape == (side, side, 3)
    np.testing.assert_array_equal(env.render(), obs)
    obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert obs.dtype == np.uint8 and obs.shape == (side, side, 3)
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
    np.testing.assert_array_equal(env.render(), obs)


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_gymnasium_check_env(env_id: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pendulum's [-2, 2] action box draws a hint
        gym_check_env(_make(env_id).unwrapped)


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_sb3_check_env(env_id: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sb3_check_env(_make(env_id))


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_same_seed_same_frames(env_id: str) -> None:
    a, b = _rollout(env_id, seed=3), _rollout(env_id, seed=3)
    assert len(a) == len(b)
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_array_equal(fa, fb)


@pytest.mark.parametrize("env_id", CLASSIC_IDS + ("vwm/MinAtarBreakout-v0",))
def test_size_is_configurable(env_id: str) -> None:
    env = _make(env_id, size=40)
    assert env.observation_space.shape == (40, 40, 3)
    assert env.reset(seed=0)[0].shape == (40, 40, 3)
    assert env.step(env.action_space.sample())[0].shape == (40, 40, 3)


@pytest.mark.parametrize("env_id", ("vwm/CartPolePixels-v0", "vwm/MinAtarBreakout-v0"))
@pytest.mark.parametrize(
    ("size", "message"),
    [(0, "positive"), (-5, "positive"), (8, "at least 16"), (64.0, "integer"), ("64", "integer")],
)
def test_bad_size_raises(env_id: str, size: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gym.make(env_id, size=size)


def _cartpole_frame(x: float, theta: float) -> np.ndarray:
    env = _make("vwm/CartPolePixels-v0").unwrapped
    env.reset(seed=0)
    env.state = np.array([x, 0.0, theta, 0.0])
    return env.render()


def _mean_column(mask: np.ndarray) -> float:
    assert mask.any()
    return float(np.nonzero(mask)[1].mean())


def test_cartpole_shows_cart_position() -> None:
    left, right = _cartpole_frame(-1.0, 0.0), _cartpole_frame(1.0, 0.0)
    assert not np.array_equal(left, right)
    cart_rows = slice(0, int(0.75 * 64))  # above the track

    def cart(frame: np.ndarray) -> np.ndarray:
        return (frame[cart_rows] == 0).all(axis=2)

    assert _mean_column(cart(right)) > _mean_column(cart(left)) + 10


def test_cartpole_shows_pole_angle() -> None:
    lean_left, lean_right = _cartpole_frame(0.0, -0.15), _cartpole_frame(0.0, 0.15)
    top = slice(0, 24)  # only the upper part of the pole reaches here

    def pole(frame: np.ndarray) -> np.ndarray:
        return (frame[top] != 255).any(axis=2)

    assert _mean_column(pole(lean_right)) > _mean_column(pole(lean_left)) + 3


def test_acrobot_shows_both_links() -> None:
    env = _make("vwm/AcrobotPixels-v0").unwrapped
    env.reset(seed=0)
    frames = []
    for t1, t2 in [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0)]:
        env.state = np.array([t1, t2, 0.0, 0.0])
        frames.append(env.render())
    base, bent_elbow, turned = frames
    assert not np.array_equal(base, bent_elbow)
    assert not np.array_equal(base, turned)
    assert not np.array_equal(bent_elbow, turned)


def test_pendulum_shows_angle_and_torque_sign() -> None:
    env = _make("vwm/PendulumPixels-v0").unwrapped
    env.reset(seed=0)
    frames = {}
    for theta in (0.0, 1.0, -1.0):
        env.state = np.array([theta, 0.0])
        frames[theta] = env.render()
    assert not np.array_equal(frames[0.0], frames[1.0])
    assert not np.array_equal(frames[1.0], frames[-1.0])
    after = {}
    for u in (2.0, -2.0):
        env.state = np.array([0.0, 0.0])
        after[u] = env.step(np.array([u], dtype=np.float32))[0]
    bottom = slice(int(0.85 * 64), 64)
    assert not np.array_equal(after[2.0][bottom], after[-2.0][bottom])


@pytest.mark.parametrize("env_id", [i for i in TASK_IDS if "MinAtar" in i])
def test_minatar_frame_matches_grid(env_id: str) -> None:
    env = _make(env_id)
    obs, info = env.reset(seed=0)
    for _ in range(5):
        obs, _, terminated, _, info = env.step(env.action_space.sample())
        if terminated:
            obs, info = env.reset()
    grid = info["grid"]  # (10, 10, C) bool
    side = obs.shape[0]
    centres = (np.arange(10) * side + side // 2) // 10  # a pixel inside each cell
    sampled = obs[centres][:, centres]  # (10, 10, 3)
    empty = ~grid.any(axis=2)
    assert (sampled[empty] == PALETTE[0]).all()
    assert (sampled[~empty] != PALETTE[0]).any(axis=1).all()


@pytest.mark.parametrize("game", ("Breakout", "Freeway"))
def test_minatar_40px_ids_draw_each_cell_as_a_4x4_block(game: str) -> None:
    env = _make(f"vwm/MinAtar{game}Minimal40px-v0")
    same = _make(f"vwm/MinAtar{game}Minimal-v0", size=40)
    obs, _ = env.reset(seed=1)
    np.testing.assert_array_equal(obs, same.reset(seed=1)[0])
    assert env.action_space == same.action_space
    for action in (1, 2, 0, 1):
        obs = env.step(action)[0]
        np.testing.assert_array_equal(obs, same.step(action)[0])
        blocks = obs.reshape(10, 4, 10, 4, 3)
        assert (blocks == blocks[:, :1, :, :1]).all()  # one colour per 4x4 cell


def test_make_real_env() -> None:
    env = make_real_env("vwm/CartPolePixels-v0", size=32)
    assert env.reset(seed=0)[0].shape == (32, 32, 3)


def test_make_real_env_unknown_id() -> None:
    with pytest.raises(ValueError, match="Known ids:.*vwm/CartPolePixels-v0") as err:
        make_real_env("vwm/CartPolePixel-v0")
    assert "Did you mean" in str(err.value)


@pytest.mark.skipif(HAS_ATARI, reason="ale-py is installed")
@pytest.mark.parametrize("env_id", ATARI_TASK_IDS)
def test_missing_atari_extra_message(env_id: str) -> None:
    with pytest.raises(ImportError, match=r"pip install 'vwm\[atari\]'"):
        gym.make(env_id)


@pytest.mark.skipif(not HAS_ATARI, reason="needs the vwm[atari] extra")
@pytest.mark.parametrize("env_id", ATARI_TASK_IDS)
def test_atari_envs(env_id: str) -> None:
    env = _make(env_id)
    assert env.reset(seed=0)[0].shape == (64, 64, 3)
    gym_check_env(env.unwrapped, skip_render_check=True)
