"""The genie family: tokenizer, latent actions, MaskGIT sampling, action modes, fit-actions.

The protocol itself is checked by the conformance suite (genie is registered); here are the
family's own promises, on tiny models and the synthetic dot task of `genie_tasks`.
"""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import video_envs  # noqa: F401  (registers vwm/Imagined-v0)
from tests.world_models import genie_tasks as dot
from world_models import families
from world_models.action_map import ActionMap
from world_models.base import burn_in
from world_models.batch import SequenceBatch
from world_models.checkpoint import ContextBank, load_checkpoint, save_checkpoint
from world_models.genie.dynamics import DynamicsTransformer, causal_allowed
from world_models.genie.model import real_action_spec
from world_models.genie.quantizers import make_quantizer
from world_models.genie.tokenizer import Tokenizer
from world_models.sampling import TorchNoise
from world_models.stages import model_stages

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def tiny_model(kind: str = "discrete", dim: int = 2, **overrides):
    low, high = ((-1.0,), (1.0,)) if kind == "continuous" else (None, None)
    spec = families.make_spec("genie", (dot.SIZE, dot.SIZE, 3), kind, dim, low, high, preset="tiny",
                              overrides=overrides)
    torch.manual_seed(0)
    return families.build_model(spec)


def train_lam(model, steps: int = 400, seed: int = 0) -> None:
    """The latent action model alone on dot episodes, without labels."""
    frames, actions = dot.episodes(64, 5, seed=seed)
    pairs = torch.ones(64, 5, dtype=torch.bool)
    pairs[:, 0] = False
    optimizer = torch.optim.Adam(model.lam.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        rows = torch.randint(0, 64, (8,), generator=gen)
        loss, _ = model.lam.loss(frames[rows], pairs[rows], actions[rows], torch.zeros_like(pairs[rows]),
                                 10.0, 0.1, 0.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


@pytest.fixture(scope="module")
def lam_model():
    """A tiny genie model (real actions Discrete(2)) whose LAM learned the dot without labels."""
    model = tiny_model(lam_label_weight=0.0)
    train_lam(model)
    return model


@pytest.fixture(scope="module")
def video_checkpoint(lam_model, tmp_path_factory) -> str:
    """`lam_model` as if trained on action-free video: real action space discrete:1, latent mode."""
    spec = families.make_spec("genie", (dot.SIZE, dot.SIZE, 3), "discrete", 1, preset="tiny")
    model = families.build_model(spec)
    model.load_state_dict({k: v for k, v in lam_model.state_dict().items()
                           if not k.startswith(("action_map.", "lam.label_head."))}, strict=False)
    frames, _ = dot.episodes(6, 3, seed=5)
    path = tmp_path_factory.mktemp("genie_video") / "ckpt"
    save_checkpoint(path, model, ContextBank(frames, torch.zeros(6, 3, dtype=torch.long)), {"task": None})
    return str(path)


@pytest.mark.parametrize("kind", ["fsq", "vq"])
def test_tokens_round_trip_and_codebook_is_used(kind):
    """FSQ (default) and the VQ option learn a tiny video; codes map back to their indices."""
    torch.manual_seed(0)
    quantizer = make_quantizer(kind, (5, 4, 4), vq_dim=4, vq_size=64)
    tokenizer = Tokenizer((dot.SIZE, dot.SIZE, 3), channels=16, patch=4, quantizer=quantizer)
    frames, _ = dot.episodes(8, 4, seed=0)
    valid = torch.ones(8, 4, dtype=torch.bool)
    optimizer = torch.optim.Adam(tokenizer.parameters(), lr=3e-3)
    for _ in range(150):
        loss, metrics = tokenizer.loss(frames, valid, fg_weight=10.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert metrics["tokenizer_psnr"] > 20.0, metrics
    assert metrics["tokenizer_usage"] > 1 / tokenizer.vocab and metrics["tokenizer_perplexity"] > 1.5
    tokenizer.eval()
    indices = tokenizer.encode(frames)  # (8, 4, N)
    assert indices.shape == (8, 4, 16) and indices.dtype == torch.int64
    codes = tokenizer.codes(indices)  # (8, 4, N, d)
    assert codes.shape == (8, 4, 16, quantizer.dim)
    if kind == "fsq":  # FSQ bounds its input before rounding: read indices back from the codes
        again = quantizer.fsq.codes_to_indices(codes.flatten(0, 1))
    else:  # a codebook vector is its own nearest code
        _, again, _ = quantizer.quantize(codes.flatten(0, 1))
    assert torch.equal(again.long().view_as(indices), indices)
    assert tokenizer.decode(indices).shape == frames.shape


def test_a_frozen_vq_tokenizer_keeps_its_codebook():
    """Once the tokenizer stage is over (parameters frozen), encoding in train mode must not
    move the codebook, or the dynamics' tokens would drift under it."""
    vq = make_quantizer("vq", (), vq_dim=4, vq_size=16)
    tokenizer = Tokenizer((dot.SIZE, dot.SIZE, 3), channels=8, patch=4, quantizer=vq)
    tokenizer.requires_grad_(False)
    before = {k: v.clone() for k, v in tokenizer.state_dict().items()}
    tokenizer.encode(dot.episodes(4, 3, seed=0)[0])
    assert all(torch.equal(before[k], v) for k, v in tokenizer.state_dict().items())


def test_latent_actions_separate_two_real_actions_without_labels(lam_model):
    frames, actions = dot.episodes(64, 5, seed=0)  # the LAM's (unlabelled) training episodes
    held_frames, held_actions = dot.episodes(32, 6, seed=1)
    action_map = ActionMap(real_action_spec(lam_model.spec), lam_model.n_latent)
    action_map.update(actions[:, 1:], lam_model.latent_actions(frames)[:, 1:])
    accuracy = action_map.accuracy(held_actions[:, 1:], lam_model.latent_actions(held_frames)[:, 1:])
    assert accuracy >= 0.8, f"label probe {accuracy:.3f} (chance 0.5)"
    assert int(action_map.to_latent(torch.tensor([0]))) != int(action_map.to_latent(torch.tensor([1])))


def test_maskgit_sampling_reproduces_per_seed():
    model = tiny_model().eval()
    frames, _ = dot.episodes(3, 3, seed=2)
    action = torch.tensor([0, 1, 1])

    def rollout(seed: int) -> torch.Tensor:
        noise = TorchNoise(torch.Generator().manual_seed(seed))
        state, out = burn_in(model, frames), []
        for _ in range(3):
            state = model.step(state, action, noise).state
            out.append(state["tokens"].clone())
        return torch.stack(out)

    assert torch.equal(rollout(1), rollout(1))
    assert not torch.equal(rollout(1), rollout(2))
    greedy = model.with_action_mode("real")
    greedy.cfg = greedy.cfg.replace({"temperature": 0.0, "confidence_noise": 0.0})
    state = burn_in(greedy, frames)
    a = greedy.step(state, action, TorchNoise(torch.Generator().manual_seed(1))).state["tokens"]
    b = greedy.step(state, action, TorchNoise(torch.Generator().manual_seed(2))).state["tokens"]
    assert torch.equal(a, b), "argmax decoding does not depend on the noise"


@pytest.mark.parametrize("length", [1, 3, 4, 7])
def test_cached_dynamics_equals_the_training_forward(length):
    """Imagination's key/value cache (a ring of K slots written in turn) gives every frame the
    logits of the training forward over the whole sequence (sliding K-frame window), also
    once the sequence is longer than the ring."""
    torch.manual_seed(0)
    k, n, vocab, n_actions, dim, layers, b = 3, 16, 20, 4, 32, 2, 5
    dyn = DynamicsTransformer(vocab, n, n_actions, k, dim, layers, 2).eval()
    tokens = torch.randint(0, vocab, (b, length, n))
    actions = torch.randint(0, n_actions, (b, length))
    actions[:, 0] = n_actions  # start id
    one_episode, present = torch.zeros(b, length, dtype=torch.long), torch.ones(b, length, dtype=torch.bool)
    allowed = causal_allowed(one_episode, present, k)
    cache = torch.zeros(b, k, layers, 2, n, dim)
    filled = torch.zeros(b, k, dtype=torch.bool)
    pos, rows = torch.zeros(b, dtype=torch.long), torch.arange(b)
    with torch.no_grad():
        full = dyn(tokens, actions, allowed)  # (B, T, N, V)
        for t in range(length):
            distance = k - (torch.arange(k)[None] - pos[:, None]) % k  # (B, K)
            logits, kv = dyn.forward_newest(tokens[:, t], actions[:, t], cache, distance, filled)
            torch.testing.assert_close(logits, full[:, t], rtol=1e-5, atol=1e-5)
            cache, filled = cache.clone(), filled.clone()
            cache[rows, pos], filled[rows, pos] = kv, True
            pos = (pos + 1) % k


def test_video_checkpoint_plays_latent_actions_by_default(video_checkpoint):
    env = gym.make("vwm/Imagined-v0", checkpoint=video_checkpoint, max_episode_steps=5)
    assert env.action_space == gym.spaces.Discrete(8)
    check_env(env.unwrapped)
    rssm_like = gym.make("vwm/Imagined-v0", checkpoint=video_checkpoint, action_mode="real")
    assert rssm_like.action_space == gym.spaces.Discrete(1)  # the placeholder of action-free data
    with pytest.raises(ValueError, match="action_mode"):
        gym.make("vwm/Imagined-v0", checkpoint=video_checkpoint, action_mode="bogus")


def test_fit_actions_recovers_the_true_mapping(video_checkpoint, tmp_path):
    from tests.conftest import collect_tiny
    from world_models.fit_actions import FitActionsConfig, fit_actions

    dot.register()
    dataset = collect_tiny(os.environ["MINARI_DATASETS_PATH"], dot.TASK, steps=200)
    out = tmp_path / "fitted"
    path, summary = fit_actions(FitActionsConfig(checkpoint=video_checkpoint, dataset=dataset, episodes=3,
                                                 probe_episodes=3, out=str(out)))
    assert summary["probe_accuracy"] >= 0.8 and summary["fit_accuracy"] >= 0.8, summary
    loaded = load_checkpoint(path)
    assert loaded.spec.hparams["action_mode"] == "real" and loaded.task == dot.TASK
    action_map = loaded.model.action_map
    left, right = action_map.to_latent(torch.tensor([0, 1]))
    assert int(left) != int(right)
    assert action_map.to_real(torch.stack([left, right])).tolist() == [0, 1]
    for mode, space in (("real", gym.spaces.Discrete(2)), ("latent", gym.spaces.Discrete(8)), (None, None)):
        env = gym.make("vwm/Imagined-v0", checkpoint=str(path), action_mode=mode)
        assert env.action_space == (space or gym.spaces.Discrete(2))
        check_env(env.unwrapped)

    # the LAPO route: a policy acting in latent actions, decoded to real ones, on the real task
    from agents.evaluate import EvaluateConfig, evaluate_from_config

    class AlwaysRight:
        def predict(self, observation, state=None, episode_start=None, deterministic=True):
            return np.full(observation.shape[0], int(right)), None

    import agents.evaluate as evaluate

    original = evaluate.load_policy
    evaluate.load_policy = lambda *args, **kw: AlwaysRight()
    try:
        result = evaluate_from_config(EvaluateConfig(task=dot.TASK, policy="latent", checkpoint=str(path),
                                                     latent_actions=True, episodes=2, num_envs=2))
    finally:
        evaluate.load_policy = original
    assert len(result.returns) == 2

    # the same through `vwm train-agent --action-mode latent` and `vwm evaluate --policy ZIP`
    from agents.sb3 import SB3Config, train_sb3_in_imagination

    summary = train_sb3_in_imagination(str(path), SB3Config(
        algo="a2c", action_mode="latent", steps=20, num_envs=2, eval_episodes=1, progress=False),
        tmp_path / "agent")
    from agents.sb3 import load_sb3_policy

    assert isinstance(load_sb3_policy(summary["path"], dot.TASK), evaluate.LatentActionPolicy)
    result = evaluate_from_config(EvaluateConfig(task=dot.TASK, policy=summary["path"], episodes=2,
                                                 num_envs=2))
    assert len(result.returns) == 2


def test_rssm_has_no_latent_action_mode(tmp_path):
    from world_models.action_map import apply_action_mode

    spec = families.make_spec("rssm", (16, 16, 3), "discrete", 2, preset="tiny")
    model = families.build_model(spec)
    bank = ContextBank(torch.zeros(1, 1, 16, 16, 3, dtype=torch.uint8), torch.zeros(1, 1, dtype=torch.long))
    assert apply_action_mode(model, bank, "real")[0] is model
    with pytest.raises(ValueError, match="no latent actions"):
        apply_action_mode(model, bank, "latent")


def test_train_model_from_a_folder_of_mp4_files(tmp_path):
    from video_envs.video import write_video
    from world_models.train import TrainConfig, train_world_model

    frames, _ = dot.episodes(3, 12, seed=3)
    folder = tmp_path / "videos"
    folder.mkdir()
    for i, clip in enumerate(frames.numpy()):
        write_video(folder / f"clip{i}.mp4", clip, fps=10)
    overrides = '{"tokenizer_steps": 2, "lam_steps": 2}'
    checkpoint = train_world_model(TrainConfig(
        videos=(str(folder),), family="genie", preset="tiny", overrides=overrides, video_size=dot.SIZE,
        out=str(tmp_path / "run"), steps=6, batch_size=2, seq_len=4, holdout_episodes=1, num_contexts=4,
        eval_every=0, eval_horizon=2, checkpoint_every=6, tensorboard=False, progress=False))
    loaded = load_checkpoint(checkpoint)
    assert loaded.spec.family == "genie" and loaded.spec.action_dim == loaded.model.n_latent
    assert loaded.config["trainer"]["stages"] == ["tokenizer", "latent_actions", "dynamics"]
    env = gym.make("vwm/Imagined-v0", checkpoint=str(checkpoint), max_episode_steps=3)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert obs.shape == (dot.SIZE, dot.SIZE, 3) and reward == 0.0 and not terminated and truncated


def oracle_batch(frames: torch.Tensor, actions: torch.Tensor) -> SequenceBatch:
    """Dot episodes as a labelled batch (every transition after the first has its action)."""
    b, t = actions.shape
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    ones = torch.ones(b, t, dtype=torch.bool)
    return SequenceBatch(frames=frames, actions=actions, rewards=torch.zeros(b, t), terminated=~ones,
                         is_first=first, valid=ones, has_action=~first, has_reward=ones)


def test_oracle_steps_with_real_actions_and_trains_without_a_lam_stage():
    model = tiny_model(dynamics_actions="real").train()
    assert model.spec.action_kind == "discrete" and model.spec.action_dim == 2
    assert model.dynamics.action_emb.num_embeddings == 3  # 2 real actions + the start id
    assert [s.name for s in model_stages(model)] == ["tokenizer", "dynamics"]
    frames, actions = dot.episodes(4, 5, seed=1)
    loss, metrics = model.compute_loss(oracle_batch(frames, actions), 0)  # every part trainable
    assert torch.isfinite(loss) and "lam_loss" not in metrics  # the oracle never trains its LAM
    model.tokenizer.requires_grad_(False)  # the dynamics stage
    loss, metrics = model.compute_loss(oracle_batch(frames, actions), 100)
    assert torch.isfinite(loss) and "dynamics_loss" in metrics and "lam_loss" not in metrics
    loss.backward()
    assert model.dynamics.action_emb.weight.grad is not None
    model.eval()
    state = burn_in(model, frames[:, :3], actions[:, :3])
    out = model.step(state, torch.tensor([0, 1, 1, 0]), TorchNoise(torch.Generator().manual_seed(0)))
    assert out.state["frame"].shape == (4, dot.SIZE, dot.SIZE, 3)
    assert out.state["actions"].max() <= 2
    with pytest.raises(ValueError, match="real actions must be in"):
        model.step(state, torch.tensor([0, 2, 1, 0]))
    with pytest.raises(ValueError, match="real actions only"):
        model.with_action_mode("latent")


@pytest.mark.parametrize(("kind", "dim", "overrides", "match"), [
    ("continuous", 1, {}, "discrete actions"),
    ("discrete", 1, {}, "action-free"),
    ("discrete", 2, {"action_mode": "latent"}, "action_mode must be 'real'"),
    ("discrete", 2, {"dynamics_actions": "labels"}, "dynamics_actions must be one of"),
])
def test_oracle_rejects_what_it_cannot_condition_on(kind, dim, overrides, match):
    with pytest.raises(ValueError, match=match):
        tiny_model(kind, dim, **{"dynamics_actions": "real", **overrides})


@pytest.mark.slow
def test_the_oracle_dynamics_learns_what_the_action_does():
    """Trained on the dot (the action alone decides where it goes), the dynamics conditioned
    on real actions predicts the next frame better with the true action than with the other,
    in nearly every row. Two spatio-temporal blocks at least: with one (the tiny preset), a
    token cannot read another position of the previous frame, so a dot that crosses a token
    boundary cannot follow its action (measured: the true action was better in 69% of rows)."""
    model = tiny_model(dynamics_actions="real", dyn_layers=2, dyn_dim=64).train()
    frames, actions = dot.episodes(256, 6, seed=1)
    gen = torch.Generator().manual_seed(0)
    for prefixes, steps, stage_step in ((("tokenizer.",), 600, 0), (("dynamics.", "reward."), 1500, 10_000)):
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(prefixes))
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        for _ in range(steps):
            rows = torch.randint(0, 256, (16,), generator=gen)
            loss, _ = model.compute_loss(oracle_batch(frames[rows], actions[rows]), stage_step)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    f, a = dot.episodes(64, 5, seed=9)
    with torch.inference_mode():
        state = burn_in(model, f[:, 1:4], a[:, 1:4])

        def error(action: torch.Tensor) -> torch.Tensor:  # (64,) MSE to the real next frame
            out = model.step(state, action, TorchNoise(torch.Generator().manual_seed(0)))
            return ((out.state["frame"].float() - f[:, 4].float()) ** 2).mean((1, 2, 3))

        true, other = error(a[:, 4]), error(1 - a[:, 4])
    assert (true < other).float().mean() >= 0.9
    assert true.mean() < 0.5 * other.mean()
