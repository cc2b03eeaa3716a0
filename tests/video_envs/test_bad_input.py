"""Bad input at the env boundary, generated with Hypothesis, on every registered env.

Every registered real task id (the ALE ids when ale-py is installed) and imagined envs of every
registered model family (tiny checkpoints, discrete and continuous actions) get actions of the
wrong dtype, shape or range, NaN/inf continuous actions, steps before reset and after the
episode ended, odd seeds and options, and start contexts of the wrong shape. Each must raise a
ValueError/TypeError/Gymnasium error that names the problem (the action space, "seed",
"option", "context"), raised by vwm or Gymnasium rather than deep inside torch or numpy, and
must leave the env as it was: the next valid step gives what it gives without the bad call.
"""

from __future__ import annotations

import importlib.util
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.error import Error as GymError
from gymnasium.error import ResetNeeded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import video_envs  # noqa: F401  (registers the ids)
from video_envs.imagined import WorldModelEnv, WorldModelVectorEnv
from video_envs.registration import ATARI_TASK_IDS, TASK_IDS
from video_envs.sb3 import WorldModelSB3VecEnv
from world_models import families
from world_models.checkpoint import ContextBank, save_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
HAS_ALE = importlib.util.find_spec("ale_py") is not None
REAL_IDS = [*TASK_IDS, *(pytest.param(i, marks=pytest.mark.skipif(not HAS_ALE, reason="needs ale-py"))
                         for i in ATARI_TASK_IDS)]
KINDS = {"discrete": (3, None, None), "continuous": (2, (-1.0, -0.5), (1.0, 2.0))}
FAMILY_KINDS = [(name, kind) for name in families.family_names() for kind in KINDS]
SIZE = 16
BOUNDED = settings(max_examples=15, deadline=None, database=None, derandomize=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CLEAR_ERRORS = (ValueError, TypeError, GymError)


def assert_clear(excinfo: pytest.ExceptionInfo, *words: str) -> None:
    """The error is a clear one: the right type, raised by vwm or Gymnasium, naming `words`."""
    assert isinstance(excinfo.value, CLEAR_ERRORS), repr(excinfo.value)
    innermost = str(excinfo.traceback[-1].path)
    assert "/torch/" not in innermost and "/numpy/" not in innermost, innermost
    message = str(excinfo.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


# ------------------------------------------------------------------ strategies
def bad_discrete(n: int) -> st.SearchStrategy:
    """Anything but one integer in [0, n)."""
    return st.one_of(
        st.integers(max_value=-1), st.integers(min_value=n),  # out of range, beyond int64 too
        hnp.from_dtype(np.dtype(np.uint8)).filter(lambda a: a >= n),
        st.floats(allow_nan=True, allow_infinity=True),  # floats, even integral ones
        hnp.arrays(np.int64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=3),
                   elements=st.integers(0, n - 1)),  # wrong shape
        st.sampled_from([None, "1", True, np.bool_(False), 1 + 0j, [0, 1], b"\x00", object(), {"a": 1}]),
    )


def bad_box(space: spaces.Box) -> st.SearchStrategy:
    """Anything but a finite array of the space's shape within its bounds."""
    low, high, shape = space.low.astype(np.float64), space.high.astype(np.float64), space.shape
    inside = hnp.arrays(np.float64, shape, elements=st.floats(0.0, 1.0)).map(lambda u: low + u * (high - low))

    def poke(array: np.ndarray, index: int, value: float) -> np.ndarray:
        array = array.copy()
        array.flat[index % array.size] = value
        return array

    wrong_value = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf]),
                            st.floats(float(high.max()) + 1e-3, 1e30),
                            st.floats(-1e30, float(low.min()) - 1e-3))
    return st.one_of(
        st.builds(poke, inside, st.integers(0, 100), wrong_value),  # one entry NaN, inf or outside
        hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=3).filter(
            lambda s: s != shape), elements=st.floats(-0.5, 0.5, width=32)),  # wrong shape
        hnp.arrays(np.bool_, shape), hnp.arrays(np.complex64, shape, elements=st.just(0j)),  # wrong dtype
        st.sampled_from([None, "0.5", [[0.1], 0.2], object()]),
    )


def bad_action(space: spaces.Space) -> st.SearchStrategy:
    return bad_discrete(int(space.n)) if isinstance(space, spaces.Discrete) else bad_box(space)


def good_action(space: spaces.Space) -> st.SearchStrategy:
    """Valid actions in every numeric form a caller may use."""
    if isinstance(space, spaces.Discrete):
        index = st.integers(0, int(space.n) - 1)
        return st.one_of(index, index.map(np.int64), index.map(np.uint8), index.map(np.array))
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    unit = hnp.arrays(np.float64, space.shape, elements=st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0))
    values = unit.map(lambda u: low + u * (high - low))
    return st.one_of(values, values.map(lambda a: a.astype(np.float32)), values.map(lambda a: a.tolist()))


def bad_seed() -> st.SearchStrategy:
    return st.one_of(st.integers(max_value=-1), st.floats(allow_nan=True), st.text(max_size=3),
                     st.sampled_from([[1, -2], [0.5, 1], b"1", object()]))


def bad_options(known: tuple[str, ...]) -> st.SearchStrategy:
    keys = st.text(min_size=1, max_size=8).filter(lambda k: k not in known)
    return st.one_of(st.sampled_from([[("low", 0.0)], "low", 3, ("context",)]),
                     st.dictionaries(keys, st.integers(), min_size=1, max_size=2))


# ------------------------------------------------------------------ real tasks
@pytest.fixture(scope="module")
def real_envs():
    """Two envs per real id (made on first use): one gets the bad input, one is the control."""
    made: dict[str, tuple[gym.Env, gym.Env]] = {}
    yield lambda env_id: made.setdefault(env_id, (gym.make(env_id), gym.make(env_id)))
    for pair in made.values():
        for env in pair:
            env.close()


def same_step(env: gym.Env, control: gym.Env, action, seed: int = 3) -> None:
    """`env` (already reset with `seed` and given bad input) steps like a fresh `control`."""
    control.reset(seed=seed)
    expected = control.step(action)
    got = env.step(action)
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1:4] == expected[1:4]


@pytest.mark.parametrize("env_id", REAL_IDS)
def test_real_env_refuses_bad_actions(env_id, real_envs):
    env, control = real_envs(env_id)
    space = env.action_space

    @BOUNDED
    @given(action=bad_action(space), valid=good_action(space))
    def check(action, valid):
        env.reset(seed=3)
        with pytest.raises(CLEAR_ERRORS) as excinfo:
            env.step(action)
        assert_clear(excinfo, str(space))
        same_step(env, control, valid)  # the refused action changed nothing

    check()


@pytest.mark.parametrize("env_id", REAL_IDS)
def test_real_env_odd_seeds_and_options(env_id, real_envs):
    env, control = real_envs(env_id)
    known = getattr(env.unwrapped, "reset_options", ())

    @BOUNDED
    @given(seed=bad_seed(), options=bad_options(known), big=st.integers(0, 2**128))
    def check(seed, options, big):
        with pytest.raises(CLEAR_ERRORS) as excinfo:
            env.reset(seed=seed)
        assert_clear(excinfo, "eed")
        with pytest.raises(CLEAR_ERRORS) as excinfo:
            env.reset(seed=0, options=options)
        assert_clear(excinfo, "option")
        first, _ = env.reset(seed=big)  # any non-negative int is a seed, and a reproducible one
        np.testing.assert_array_equal(control.reset(seed=big)[0], first)

    check()


def finish_episode(env: gym.Env) -> None:
    """Drive the (reset) env to a terminal step quickly, through its public state."""
    inner = env.unwrapped
    if hasattr(inner, "game"):  # MinAtar: the game says it is over
        inner.game.env.terminal = True
        action = 0
    elif isinstance(inner.action_space, spaces.Discrete) and hasattr(inner, "x_threshold"):  # CartPole
        inner.state = np.array([inner.x_threshold - 1e-3, 5.0, 0.0, 0.0])
        action = 1
    elif hasattr(inner, "LINK_LENGTH_1"):  # Acrobot: hand well above the bar
        inner.state = np.array([math.pi, 0.0, 0.0, 0.0])
        action = 1
    else:
        pytest.skip(f"no quick way to end an episode of {type(inner).__name__}")
    *_, terminated, _, _ = env.step(action)
    assert terminated


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_real_env_step_before_reset_and_after_termination(env_id):
    for env in (gym.make(env_id), gym.spec(env_id).make(disable_env_checker=True).unwrapped):
        with pytest.raises(ResetNeeded, match="reset"):
            env.step(env.action_space.sample())
        env.reset(seed=0)
        if "Pendulum" in env_id:  # it never terminates (only its time limit truncates)
            env.step(env.action_space.sample())
            env.close()
            continue
        finish_episode(env)
        with pytest.raises(ResetNeeded, match="ended"):
            env.step(env.action_space.sample())
        env.reset(seed=1)
        env.step(env.action_space.sample())  # a reset makes it usable again
        env.close()


# ------------------------------------------------------------------ imagined envs
@pytest.fixture(scope="module")
def imagined_checkpoints(tmp_path_factory) -> dict[tuple[str, str], str]:
    """A tiny untrained checkpoint of every registered family, per action kind."""
    paths = {}
    for name, kind in FAMILY_KINDS:
        dim, low, high = KINDS[kind]
        spec = families.make_spec(name, (SIZE, SIZE, 3), kind, dim, low, high, preset="tiny")
        torch.manual_seed(0)
        model = families.build_model(spec).eval()
        gen = torch.Generator().manual_seed(0)
        k = spec.context_len
        frames = torch.randint(0, 256, (4, k, SIZE, SIZE, 3), generator=gen, dtype=torch.uint8)
        actions = (torch.randint(spec.action_dim, (4, k), generator=gen) if kind == "discrete"
                   else torch.zeros(4, k, spec.action_dim))
        path = tmp_path_factory.mktemp(f"{name}_{kind}") / "ckpt"
        save_checkpoint(path, model, ContextBank(frames, actions), {"task": None})
        paths[name, kind] = str(path)
    return paths


def imagined(path: str, terminate_threshold: float = 0.0, **kw) -> WorldModelEnv:
    """A latent imagined env that never terminates unless asked (untrained models would)."""
    return WorldModelEnv(path, obs_mode="latent", terminate_threshold=terminate_threshold, **kw)


@pytest.mark.parametrize(("family", "kind"), FAMILY_KINDS)
def test_imagined_env_refuses_bad_actions(family, kind, imagined_checkpoints):
    path = imagined_checkpoints[family, kind]
    env, control = imagined(path), imagined(path)
    n = 3
    vec = WorldModelVectorEnv(n, path, obs_mode="latent", terminate_threshold=0.0)
    sb3 = WorldModelSB3VecEnv(n, path, obs_mode="latent", terminate_threshold=0.0)
    space = env.action_space
    assert vec.single_action_space == space == sb3.action_space

    @BOUNDED
    @given(action=bad_action(space), valid=good_action(space), row=st.integers(0, n - 1))
    def check(action, valid, row):
        env.reset(seed=3)
        with pytest.raises(CLEAR_ERRORS) as excinfo:
            env.step(action)
        assert_clear(excinfo, str(space))
        same_step(env, control, valid)
        batch = np.stack([np.asarray(space.sample()) for _ in range(n)]).astype(space.dtype)
        one_bad_row = batch.copy()
        if isinstance(space, spaces.Discrete):
            one_bad_row[row] = space.n
        else:
            one_bad_row[row, -1] = np.nan if row == 0 else space.high[-1] + row
        bad_batches = [np.asarray(valid)[None].repeat(n + 1, 0), one_bad_row, batch.astype(np.complex64)]
        vec.reset(seed=3)
        for bad in bad_batches:
            with pytest.raises(CLEAR_ERRORS) as excinfo:
                vec.step(bad)
            assert_clear(excinfo, str(space))
            with pytest.raises(CLEAR_ERRORS) as excinfo:
                sb3.step_async(bad)
            assert_clear(excinfo, str(space))
        vec.step(batch)  # still usable

    check()


@pytest.mark.parametrize(("family", "kind"), FAMILY_KINDS)
def test_imagined_env_refuses_odd_seeds_options_and_contexts(family, kind, imagined_checkpoints):
    path = imagined_checkpoints[family, kind]
    env, control = imagined(path), imagined(path)
    vec = WorldModelVectorEnv(2, path, obs_mode="latent", terminate_threshold=0.0)
    spec = env.model.spec
    frame = (SIZE, SIZE, 3)
    near_misses = [frame, (1, SIZE, SIZE, 4), (1, SIZE - 1, SIZE, 3), (1, SIZE, SIZE), (1, 1, *frame),
                   (3, 1, *frame), (0, *frame)]  # (3, 1, ...): rows for 3 envs, not 2
    shapes = st.one_of(hnp.array_shapes(min_dims=0, max_dims=5, max_side=4), st.sampled_from(near_misses))
    contexts = st.one_of(
        shapes.map(lambda shape: {"frames": np.zeros(shape, np.uint8)}),
        st.integers(spec.context_len + 1, spec.context_len + 3).map(
            lambda t: {"frames": np.zeros((t, *frame), np.uint8)}),  # longer than context_len
        st.just({"frames": np.zeros((1, *frame), np.float32)}),  # not uint8
        st.just({"frames": np.zeros((2, *frame), np.uint8), "actions": np.zeros((3, 5))}),  # misaligned
        st.sampled_from([np.zeros((1, *frame), np.uint8), "frames", {"actions": [0]}]),  # not a dict
    )

    @BOUNDED
    @given(seed=bad_seed(), options=bad_options(("context", "reset_mask")), context=contexts,
           big=st.integers(0, 2**128))
    def check(seed, options, context, big):
        for target in (env, vec):
            with pytest.raises(CLEAR_ERRORS) as excinfo:
                target.reset(seed=seed)
            assert_clear(excinfo, "eed")
            with pytest.raises(CLEAR_ERRORS) as excinfo:
                target.reset(seed=0, options=options)
            assert_clear(excinfo, "option")
            with pytest.raises(CLEAR_ERRORS) as excinfo:
                target.reset(seed=0, options={"context": context})
            assert_clear(excinfo, "context")
            target.reset(seed=0)  # still usable
        first, _ = env.reset(seed=big)
        np.testing.assert_array_equal(control.reset(seed=big)[0], first)
        with pytest.raises(CLEAR_ERRORS) as excinfo:
            vec.reset(seed=[0, "1"])
        assert_clear(excinfo, "seed")
        with pytest.raises(CLEAR_ERRORS) as excinfo:
            vec.reset(options={"reset_mask": np.ones(3, bool)})
        assert_clear(excinfo, "reset_mask")

    check()


@pytest.mark.parametrize(("family", "kind"), FAMILY_KINDS)
def test_imagined_env_step_before_reset_and_after_the_end(family, kind, imagined_checkpoints):
    path = imagined_checkpoints[family, kind]
    for env in (imagined(path, terminate_threshold=1.1), imagined(path, max_episode_steps=1)):
        with pytest.raises(ResetNeeded, match="reset"):
            env.step(env.action_space.sample())
        env.reset(seed=0)
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert terminated or truncated
        with pytest.raises(ResetNeeded, match="ended"):
            env.step(env.action_space.sample())
        env.reset(seed=0)
        env.step(env.action_space.sample())
    vec = WorldModelVectorEnv(2, path, obs_mode="latent", terminate_threshold=1.1, autoreset_mode="Disabled")
    vec.reset(seed=0)
    vec.step(np.stack([vec.single_action_space.sample() for _ in range(2)]))
    with pytest.raises(ResetNeeded, match=r"rows \[0, 1\]"):
        vec.step(np.stack([vec.single_action_space.sample() for _ in range(2)]))
    vec.reset(options={"reset_mask": np.ones(2, bool)})
    vec.step(np.stack([vec.single_action_space.sample() for _ in range(2)]))
