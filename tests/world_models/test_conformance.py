"""The `WorldModel` contract (world_models/base.py), checked on every family.

Parametrised over every registered family at ``tiny`` plus two test-only models registered
here: the hand-written synthetic model (tests/synthetic.py) and a windowed family with a
K-frame ring buffer and Gaussian step noise (tests/windowed_family.py), which proves that
nothing outside a family assumes an RSSM. A new family passes by being registered.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import video_envs  # noqa: F401  (registers vwm/Imagined-v0)
from tests.synthetic import SyntheticFamily
from tests.windowed_family import WindowedFamily
from video_envs.imagined import WorldModelEnv, WorldModelVectorEnv
from world_models import families
from world_models.base import WorldModel, burn_in, reset_rows, select_rows
from world_models.checkpoint import ContextBank, load_checkpoint, save_checkpoint
from world_models.data import SequenceBatch
from world_models.filter import ModelFilter
from world_models.sampling import RowGenerator, TorchNoise

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
TEST_FAMILIES = (SyntheticFamily(), WindowedFamily())
FAMILY_NAMES = sorted(set(families.family_names()) | {f.name for f in TEST_FAMILIES})
SIZE = 16
ACTIONS = {"discrete": (3, None, None), "continuous": (1, (-1.0,), (1.0,))}


@pytest.fixture(scope="module", autouse=True)
def _test_families():
    added = [f for f in TEST_FAMILIES if f.name not in families.FAMILIES]
    for family in added:
        families.register_family(family)
    yield
    for family in added:
        families.unregister_family(family.name)


def make_model(name: str, kind: str = "discrete", seed: int = 0) -> WorldModel:
    dim, low, high = ACTIONS[kind]
    spec = families.make_spec(name, (SIZE, SIZE, 3), kind, dim, low, high, preset="tiny")
    torch.manual_seed(seed)
    return families.build_model(spec).eval()


def random_actions(model: WorldModel, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    spec = model.spec
    if spec.action_kind == "discrete":
        return torch.randint(spec.action_dim, shape, generator=gen)
    return torch.rand(shape + (spec.action_dim,), generator=gen) * 2 - 1


def context_bank(model: WorldModel, n: int = 5, seed: int = 0) -> ContextBank:
    gen = torch.Generator().manual_seed(seed)
    k = model.spec.context_len
    frames = torch.randint(0, 256, (n, k, SIZE, SIZE, 3), generator=gen, dtype=torch.uint8)
    return ContextBank(frames, random_actions(model, (n, k), gen))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[tuple[str, str], str]:
    """(family, action kind) -> checkpoint folder, written on first use."""
    return {}


def checkpoint(checkpoints, tmp_path_factory, name: str, kind: str = "discrete") -> str:
    if (name, kind) not in checkpoints:
        model = make_model(name, kind)
        path = tmp_path_factory.mktemp(f"{name}_{kind}") / "ckpt"
        save_checkpoint(path, model, context_bank(model), {"task": None})
        checkpoints[name, kind] = str(path)
    return checkpoints[name, kind]


def sequence_batch(model: WorldModel, b: int, t: int, seed: int = 0) -> SequenceBatch:
    """Random (B, T) windows starting an episode, with the masks the batch type has."""
    gen = torch.Generator().manual_seed(seed)
    fields = {
        "frames": torch.randint(0, 256, (b, t, SIZE, SIZE, 3), generator=gen, dtype=torch.uint8),
        "actions": random_actions(model, (b, t), gen),
        "rewards": torch.rand(b, t, generator=gen),
        "terminated": torch.zeros(b, t, dtype=torch.bool),
        "is_first": torch.zeros(b, t, dtype=torch.bool),
    }
    fields["terminated"][0, -1] = True
    fields["is_first"][:, 0] = True
    for name in SequenceBatch._fields:
        fields.setdefault(name, torch.ones(b, t, dtype=torch.bool))  # valid / has_action / has_reward
    return SequenceBatch(**fields)


def as_array(x) -> np.ndarray:
    return x.detach().double().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float64)


def close(a, b, atol: float = 1e-5) -> None:
    np.testing.assert_allclose(as_array(a), as_array(b), atol=atol)


# ------------------------------------------------------------------------------ env checkers
@pytest.mark.parametrize("kind", list(ACTIONS))
@pytest.mark.parametrize("obs_mode", ["pixels", "latent"])
@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_env_checkers(name, obs_mode, kind, checkpoints, tmp_path_factory):
    path = checkpoint(checkpoints, tmp_path_factory, name, kind)
    env = gym.make("vwm/Imagined-v0", checkpoint=path, obs_mode=obs_mode, max_episode_steps=20)
    check_env(env.unwrapped)
    check_env(env)
    sb3_check_env(env.unwrapped)
    if obs_mode == "latent":
        assert env.observation_space.shape == (env.unwrapped.model.spec.feature_dim,)


# ------------------------------------------------------------------------------ determinism
def single_rollout(env: WorldModelEnv, seed: int, actions: np.ndarray) -> tuple[list, list]:
    """Observations and rewards; an episode that ends is reset (as NEXT_STEP autoreset does)."""
    obs, _ = env.reset(seed=seed)
    observations, rewards, done = [obs], [], False
    for a in actions:
        if done:
            obs, _ = env.reset()
            reward, done = 0.0, False
        else:
            obs, reward, term, trunc, _ = env.step(a)
            done = term or trunc
        observations.append(obs)
        rewards.append(reward)
    return observations, rewards


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_same_seed_and_actions_give_the_same_trajectory(name, checkpoints, tmp_path_factory):
    path = checkpoint(checkpoints, tmp_path_factory, name)
    actions = np.random.default_rng(0).integers(0, 3, 12)
    runs = [single_rollout(WorldModelEnv(path, obs_mode="latent", max_episode_steps=4), 7, actions)
            for _ in range(2)]
    np.testing.assert_array_equal(np.stack(runs[0][0]), np.stack(runs[1][0]))
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_vector_row_equals_single_env_seeded_s_plus_i(name, checkpoints, tmp_path_factory):
    path = checkpoint(checkpoints, tmp_path_factory, name)
    n, seed, steps = 3, 11, 12
    actions = np.random.default_rng(1).integers(0, 3, (steps, n))
    vec = WorldModelVectorEnv(n, checkpoint=path, obs_mode="latent", max_episode_steps=4)
    obs, _ = vec.reset(seed=seed)
    vec_obs, vec_rew = [obs], []
    for a in actions:
        obs, reward, *_ = vec.step(a)
        vec_obs.append(obs)
        vec_rew.append(reward)
    for i in range(n):
        env = WorldModelEnv(path, obs_mode="latent", max_episode_steps=4)
        observations, rewards = single_rollout(env, seed + i, actions[:, i])
        close(np.stack(observations), np.stack(vec_obs)[:, i], atol=1e-4)
        close(rewards, np.stack(vec_rew)[:, i], atol=1e-4)


# ------------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_checkpoint_roundtrip_gives_the_same_outputs(name, checkpoints, tmp_path_factory):
    path = checkpoint(checkpoints, tmp_path_factory, name)
    model = make_model(name)  # the same seed as the saved model
    loaded = load_checkpoint(path).model
    bank = context_bank(model)
    action = random_actions(model, (len(bank),), torch.Generator().manual_seed(3))
    outs = []
    for m in (model, loaded):
        with torch.no_grad():
            state = burn_in(m, bank.frames, bank.actions)
            step = m.step(state, action, TorchNoise(torch.Generator().manual_seed(5)))
            outs.append([m.features(state), m.decode(state), m.features(step.state), m.decode(step.state),
                         step.reward, step.cont_prob])
    for a, b in zip(*outs, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        close(a, b, atol=1e-6)


# ------------------------------------------------------------------------------ burn-in and state
@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_burn_in_on_1_to_k_frames_is_prefix_consistent(name):
    model = make_model(name)
    assert isinstance(model, WorldModel) and isinstance(families.get_family(name), families.Family)
    spec, k = model.spec, model.spec.context_len
    gen = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (2, k, SIZE, SIZE, 3), generator=gen, dtype=torch.uint8)
    actions = random_actions(model, (2, k), gen)
    with torch.no_grad():
        full = burn_in(model, frames, actions)
        other_first = actions.clone()
        other_first[:, 0] = random_actions(model, (2,), gen)
        ignored = burn_in(model, frames, other_first)  # actions[:, 0] is ignored
        close(model.features(ignored), model.features(full))
        for t in range(1, k + 1):
            state = burn_in(model, frames[:, :t], actions[:, :t])
            assert model.features(state).shape == (2, spec.feature_dim)
            assert model.features(state).dtype == torch.float32
            assert model.decode(state).shape == (2, *spec.frame_shape)
            assert {key: v.shape for key, v in state.items()} == {key: v.shape for key, v in full.items()}
            for i in range(t, k):
                state = model.observe(state, frames[:, i], actions[:, i])
            close(model.features(state), model.features(full))
            np.testing.assert_array_equal(model.decode(state), model.decode(full))
        with pytest.raises(ValueError, match="context_len"):
            burn_in(model, torch.cat([frames, frames[:, :1]], 1), torch.cat([actions, actions[:, :1]], 1))


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_state_rows_have_a_fixed_shape(name):
    """select_rows / reset_rows work on the state without knowing the family."""
    model = make_model(name)
    bank = context_bank(model, n=3)
    noise = RowGenerator(3)
    noise.seed_rows(torch.ones(3, dtype=torch.bool), torch.arange(3))
    action = random_actions(model, (3,), torch.Generator().manual_seed(0))
    ends = torch.tensor([0, 2])
    with torch.no_grad():
        start = burn_in(model, bank.frames, bank.actions)
        stepped = model.step(start, action, noise).state
        assert {k: v.shape for k, v in stepped.items()} == {k: v.shape for k, v in start.items()}
        mixed = reset_rows(stepped, torch.tensor([True, False, True]), select_rows(start, ends))
        close(model.features(select_rows(mixed, ends)), model.features(select_rows(start, ends)))
        close(model.features(mixed)[1], model.features(stepped)[1])


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_filter_features_equal_imagination_on_the_same_frames(name):
    """The filter on a real episode (first frame, then observe) shows the features of the
    imagined env reset on the same frames, and of init_state + observe beyond the context."""
    model = make_model(name)
    k = model.spec.context_len
    n_frames = k + 3
    gen = torch.Generator().manual_seed(2)
    frames = torch.randint(0, 256, (2, n_frames, SIZE, SIZE, 3), generator=gen, dtype=torch.uint8)
    actions = random_actions(model, (2, n_frames), gen)
    filt = ModelFilter(model)
    real = []
    for t in range(n_frames):
        filt.update(frames[:, t], actions[:, t] if t else None, np.full(2, t == 0))
        real.append(filt.features())
    with torch.no_grad():
        state = burn_in(model, frames[:, :k], actions[:, :k])
        close(real[k - 1], model.features(state))
        for t in range(k, n_frames):
            state = model.observe(state, frames[:, t], actions[:, t])
            close(real[t], model.features(state))
    env = WorldModelEnv(model=model, contexts=context_bank(model), obs_mode="latent")
    for t in range(1, k + 1):
        context = {"frames": frames[0, :t].numpy(), "actions": actions[0, :t].numpy()}
        obs, _ = env.reset(seed=0, options={"context": context})
        close(obs, real[t - 1][0])


# ------------------------------------------------------------------------------ training
@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_compute_loss_is_finite_with_grads_to_every_parameter(name):
    model = make_model(name).train()
    batch = sequence_batch(model, 2, model.spec.context_len + 2)
    loss, metrics = model.compute_loss(batch, 0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert metrics and all(isinstance(k, str) and isinstance(v, float) for k, v in metrics.items())
    loss.backward()
    for pname, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, f"no gradient reaches {pname}"
            assert torch.isfinite(param.grad).all(), pname


def test_make_spec_rejects_unknown_overrides_naming_the_family():
    with pytest.raises(ValueError, match=r"unknown hyper-parameters \['bogus'\] for model family 'windowed'"):
        families.make_spec("windowed", (SIZE, SIZE, 3), "discrete", 3, preset="tiny", overrides={"bogus": 1})
    with pytest.raises(ValueError, match="unknown preset 'huge' for model family"):
        families.make_spec(FAMILY_NAMES[0], (SIZE, SIZE, 3), "discrete", 3, preset="huge")
    with pytest.raises(ValueError, match="already registered"):
        families.register_family(WindowedFamily())
    assert {"rssm", "windowed", "synthetic"} <= set(families.family_names())
