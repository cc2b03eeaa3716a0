"""The `WorldModel` contract (world_models/base.py), checked on every family.

Parametrised over every registered family at ``tiny`` plus two test-only models registered
here: the hand-written synthetic model (tests/synthetic.py) and a windowed family with a
K-frame ring buffer and Gaussian step noise (tests/windowed_family.py), which proves that
nothing outside a family assumes an RSSM. A new family passes by being registered.
Training is held to the contract too: `compute_loss` ignores what the batch's masks hide,
and a run resumed from a checkpoint continues exactly (weights, EMA weights, metrics).
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
from world_models.checkpoint import (
    ContextBank,
    load_checkpoint,
    load_trainer_state,
    load_weights,
    save_checkpoint,
)
from world_models.data import SequenceBatch, SequenceDataset
from world_models.filter import ModelFilter
from world_models.sampling import RowGenerator, TorchNoise
from world_models.stages import model_stages, select_parameters
from world_models.train import save_run_checkpoint
from world_models.trainer import WorldModelTrainer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
TEST_FAMILIES = (SyntheticFamily(), WindowedFamily())
MODE_VARIANTS = {"genie[latent]": ("genie", {"action_mode": "latent"}),
                 "genie[vq]": ("genie", {"quantizer": "vq"}),
                 "genie[oracle]": ("genie", {"dynamics_actions": "real"}),
                 "genie[lam-history]": ("genie", {"lam_history": True})}
"""Extra parametrisations: a family built with hyper-parameter overrides (genie acting in
its latent action space, Discrete(n_latent), besides its default real-action mode; genie
with a learned VQ codebook instead of FSQ; genie whose dynamics reads the real actions, the
controllability oracle; genie whose LAM decoder also sees the frame before)."""
DISCRETE_ONLY = {"genie[oracle]"}
"""Variants that only take discrete actions (the others' continuous cases are skipped)."""
FAMILY_NAMES = sorted(set(families.family_names()) | {f.name for f in TEST_FAMILIES} | set(MODE_VARIANTS))
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


def family_of(name: str) -> str:
    """The registered family behind a parametrised name."""
    return MODE_VARIANTS.get(name, (name, {}))[0]


def make_model(name: str, kind: str = "discrete", seed: int = 0) -> WorldModel:
    if kind != "discrete" and name in DISCRETE_ONLY:
        pytest.skip(f"{name} takes discrete actions only")
    dim, low, high = ACTIONS[kind]
    family, overrides = MODE_VARIANTS.get(name, (name, {}))
    spec = families.make_spec(family, (SIZE, SIZE, 3), kind, dim, low, high, preset="tiny",
                              overrides=overrides)
    torch.manual_seed(seed)
    return families.build_model(spec).eval()


def random_actions(model: WorldModel, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Actions of the model's own (env) action space."""
    return random_kind_actions(model.spec.action_kind, model.spec.action_dim, shape, gen)


def random_kind_actions(kind: str, dim: int, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    if kind == "discrete":
        return torch.randint(dim, shape, generator=gen)
    return torch.rand(shape + (dim,), generator=gen) * 2 - 1


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


def sequence_batch(b: int, t: int, seed: int = 0, kind: str = "discrete") -> SequenceBatch:
    """Random (B, T) windows starting an episode, with the masks the batch type has; actions
    of the data's action space `kind` (a model acting in latent actions still trains on
    the data's own actions)."""
    gen = torch.Generator().manual_seed(seed)
    fields = {
        "frames": torch.randint(0, 256, (b, t, SIZE, SIZE, 3), generator=gen, dtype=torch.uint8),
        "actions": random_kind_actions(kind, ACTIONS[kind][0], (b, t), gen),
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
        # float32 batch-vs-row differences accumulate over 12 steps of recurrent features
        np.testing.assert_allclose(np.stack(observations), np.stack(vec_obs)[:, i], atol=1e-4, rtol=1e-3)
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
    assert isinstance(model, WorldModel) and isinstance(families.get_family(family_of(name)), families.Family)
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
def test_compute_loss_is_finite_with_grads_to_what_each_stage_trains(name):
    """At the first step of every training stage, the loss is finite and every parameter
    the stage trains gets a finite gradient (what a stage freezes may get none)."""
    model = make_model(name).train()
    batch = sequence_batch(2, model.spec.context_len + 2)
    start = 0
    for stage in model_stages(model):
        model.zero_grad(set_to_none=True)
        loss, metrics = model.compute_loss(batch, start)
        assert loss.ndim == 0 and torch.isfinite(loss), stage.name
        assert metrics and all(isinstance(k, str) and isinstance(v, float) for k, v in metrics.items())
        loss.backward()
        for _, params in select_parameters(model, stage):
            for pname, param in params:
                assert param.grad is not None, f"stage {stage.name!r}: no gradient reaches {pname}"
                assert torch.isfinite(param.grad).all(), pname
        start += int(stage.steps or 0)


def masked_batch(model: WorldModel, kind: str) -> SequenceBatch:
    """Rows as a mixed dataset samples them: labelled; labelled but padded after 3 frames
    (a short episode); --ignore-actions (rewards, no actions); a video (neither), padded."""
    t = model.spec.context_len + 3
    batch = sequence_batch(4, t, seed=4, kind=kind)
    steps = torch.arange(t)
    valid = steps[None, :] < torch.tensor([t, 3, t, t - 1])[:, None]  # (B, T) padding is a suffix
    row_actions = torch.tensor([True, True, False, False])[:, None]
    row_rewards = torch.tensor([True, True, True, False])[:, None]
    return batch._replace(
        terminated=batch.terminated & valid,
        valid=valid,
        has_action=valid & ~batch.is_first & row_actions,
        has_reward=valid & row_rewards,
    )


def perturbed(batch: SequenceBatch, mask: str, kind: str) -> SequenceBatch:
    """`batch` with fresh random values wherever `mask` is False, in the fields it guards."""
    other = sequence_batch(*batch.is_first.shape, seed=5, kind=kind)
    keep = getattr(batch, mask)  # (B, T)

    def mix(name: str) -> torch.Tensor:
        ours, theirs = getattr(batch, name), getattr(other, name)
        if name == "terminated":
            theirs = ~ours
        where = keep.view(*keep.shape, *[1] * (ours.ndim - 2))
        mixed = torch.where(where, ours, theirs)
        assert not torch.equal(mixed, ours), f"the {name} perturbation changed nothing"
        return mixed

    guarded = {"has_action": ("actions",), "has_reward": ("rewards", "terminated"),
               "valid": ("frames", "actions", "rewards", "terminated")}[mask]
    return batch._replace(**{name: mix(name) for name in guarded})


def loss_and_grads(model: WorldModel, batch: SequenceBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """compute_loss in train mode under a fixed global seed, and the gradient it gives."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)  # families may draw training noise from the global generator
    loss, _ = model.compute_loss(batch, 0)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize("mask", ["has_action", "has_reward", "valid"])
@pytest.mark.parametrize("kind", list(ACTIONS))
@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_compute_loss_ignores_what_the_masks_hide(name, kind, mask):
    """Actions where not has_action, rewards and terminations where not has_reward, and
    anything on padding (valid False) change neither the loss nor its gradient."""
    model = make_model(name, kind).train()
    batch = masked_batch(model, kind)
    loss, grads = loss_and_grads(model, batch)
    other_loss, other_grads = loss_and_grads(model, perturbed(batch, mask, kind))
    assert torch.isfinite(loss)
    assert torch.equal(other_loss, loss), f"{mask} False: loss {float(other_loss)} != {float(loss)}"
    assert other_grads.keys() == grads.keys()
    for pname, grad in grads.items():
        assert torch.equal(other_grads[pname], grad), f"{mask} False changes the gradient of {pname}"


def tiny_dataset(model: WorldModel) -> SequenceDataset:
    """Three random episodes of 7, 4 and 9 frames (the 4-frame one gives padded windows)."""
    rng = np.random.default_rng(0)
    offsets = np.array([0, 7, 11, 20])
    n, spec = int(offsets[-1]), model.spec
    if spec.action_kind == "discrete":
        actions = rng.integers(0, spec.action_dim, n)
    else:
        actions = rng.uniform(-1, 1, (n, spec.action_dim)).astype(np.float32)
    terminated = np.zeros(n, bool)
    terminated[offsets[1:3] - 1] = True  # the last episode is cut short (truncated)
    return SequenceDataset(rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8), actions,
                           rng.random(n).astype(np.float32), terminated, offsets, spec.action_kind,
                           spec.action_dim, spec.action_low, spec.action_high)


def new_trainer(model: WorldModel, seed: int = 1) -> WorldModelTrainer:
    return WorldModelTrainer(model, lr=1e-2, grad_clip=10.0, seed=seed)


def train_steps(trainer: WorldModelTrainer, data: SequenceDataset, steps: int) -> list[dict[str, float]]:
    return [trainer.update(data, 3, 6) for _ in range(steps)]


def snapshot(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("kind", list(ACTIONS))
@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_resume_from_a_checkpoint_is_exact(name, kind, tmp_path):
    """N steps straight == N/2 steps, checkpoint (model, EMA, trainer state), a fresh trainer
    on the reloaded checkpoint, N/2 steps: the same weights, EMA weights and metrics."""
    steps = 4
    model = make_model(name, kind)
    data, start = tiny_dataset(model), snapshot(model)
    straight = new_trainer(model)
    straight_metrics = train_steps(straight, data, steps)
    assert any(not torch.equal(v, start[k]) for k, v in model.state_dict().items()), "nothing trained"

    first = new_trainer(make_model(name, kind))
    train_steps(first, data, steps // 2)
    path = save_run_checkpoint(tmp_path, first, context_bank(first.model), {"task": None})
    torch.manual_seed(123)  # whatever happens in between
    loaded = load_checkpoint(path, ema=False)  # as train_world_model resumes
    resumed = new_trainer(loaded.model, seed=99)
    resumed.load_state(load_trainer_state(path), loaded.config["trainer"])
    if resumed.ema is not None:
        assert load_weights(path, resumed.ema, ema=True), "the checkpoint holds no EMA weights"
    resumed_metrics = train_steps(resumed, data, steps - steps // 2)

    assert resumed_metrics == straight_metrics[steps // 2 :]
    assert resumed.step == straight.step == steps
    for a, b in ((resumed.model, straight.model), (resumed.ema, straight.ema)):
        if b is None:
            assert a is None
            continue
        for key, value in snapshot(b).items():
            assert torch.equal(a.state_dict()[key], value), f"{key} differs after resuming"


def test_make_spec_rejects_unknown_overrides_naming_the_family():
    with pytest.raises(ValueError, match=r"unknown hyper-parameters \['bogus'\] for model family 'windowed'"):
        families.make_spec("windowed", (SIZE, SIZE, 3), "discrete", 3, preset="tiny", overrides={"bogus": 1})
    with pytest.raises(ValueError, match="unknown preset 'huge' for model family"):
        families.make_spec(FAMILY_NAMES[0], (SIZE, SIZE, 3), "discrete", 3, preset="huge")
    with pytest.raises(ValueError, match="already registered"):
        families.register_family(WindowedFamily())
    assert {"rssm", "windowed", "synthetic"} <= set(families.family_names())
