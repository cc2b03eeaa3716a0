"""Tests of the RSSM family: protocol shapes, sampling, resets, spec handling, learning."""

from __future__ import annotations

import pytest
import torch

from world_models import rssm
from world_models.base import ModelSpec, WorldModel
from world_models.data import SequenceBatch
from world_models.families import build_model
from world_models.families import make_spec as family_make_spec
from world_models.rssm.distributions import (
    categorical_kl,
    free_bits,
    kl_balance,
    sample_index,
    sample_onehot,
    unimix_probs,
)

FRAME_SHAPES = [(64, 64, 3), (32, 32, 3), (40, 40, 3)]
ACTIONS = {"discrete": dict(action_dim=3), "continuous": dict(action_dim=2)}


def make_model(frame_shape=(32, 32, 3), kind="discrete", **overrides) -> rssm.RSSMWorldModel:
    torch.manual_seed(0)
    low, high = ((-1.0, -2.0), (1.0, 2.0)) if kind == "continuous" else (None, None)
    spec = rssm.make_spec(
        frame_shape, kind, ACTIONS[kind]["action_dim"], low, high, "tiny", overrides
    )
    return rssm.build(spec)


def random_actions(spec: ModelSpec, *lead: int) -> torch.Tensor:
    if spec.action_kind == "discrete":
        return torch.randint(0, spec.action_dim, lead)
    return torch.rand(*lead, spec.action_dim) * 2 - 1


def random_batch(spec: ModelSpec, b: int, t: int) -> SequenceBatch:
    frames = torch.randint(0, 256, (b, t, *spec.frame_shape), dtype=torch.uint8)
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    terminated = torch.zeros(b, t, dtype=torch.bool)
    terminated[:, -1] = True
    return SequenceBatch(frames, random_actions(spec, b, t), torch.randn(b, t), terminated, is_first)


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
@pytest.mark.parametrize("frame_shape", FRAME_SHAPES)
def test_protocol_shapes_and_dtypes(frame_shape, kind):
    model = make_model(frame_shape, kind)
    spec = model.spec
    assert isinstance(model, WorldModel)
    b, t = 3, 4
    frames = torch.randint(0, 256, (b, t, *frame_shape), dtype=torch.uint8)
    state = model.init_state(frames, random_actions(spec, b, t))
    cfg = model.cfg
    assert state["deter"].shape == (b, cfg.deter) and state["deter"].dtype == torch.float32
    assert state["stoch"].shape == (b, cfg.stoch, cfg.classes)
    torch.testing.assert_close(state["stoch"].sum(-1), torch.ones(b, cfg.stoch))

    trans = model.step(state, random_actions(spec, b), torch.Generator().manual_seed(0))
    assert set(trans.state) == {"deter", "stoch"}
    assert trans.reward.shape == (b,) and trans.reward.dtype == torch.float32
    assert trans.cont_prob.shape == (b,) and trans.cont_prob.dtype == torch.float32
    assert torch.all((trans.cont_prob >= 0) & (trans.cont_prob <= 1))

    feats = model.features(trans.state)
    assert feats.shape == (b, spec.feature_dim) and feats.dtype == torch.float32
    frame = model.decode(trans.state)
    assert frame.shape == (b, *frame_shape) and frame.dtype == torch.uint8

    observed = model.observe(trans.state, frames[:, -1], random_actions(spec, b))
    assert {k: v.shape for k, v in observed.items()} == {k: v.shape for k, v in state.items()}

    loss, metrics = model.compute_loss(random_batch(spec, 2, 5))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(isinstance(v, float) for v in metrics.values())
    assert {"loss", "image_loss", "reward_loss", "cont_loss", "kl_dyn", "psnr"} <= set(metrics)
    loss.backward()
    assert model.encoder.net[0].weight.grad is not None
    assert all(p.grad is not None for p in model.parameters())
    assert model.post_net[-1].weight.grad.abs().sum() > 0


def test_works_under_inference_mode():
    model = make_model().eval()
    spec = model.spec
    with torch.inference_mode():
        frames = torch.randint(0, 256, (2, 3, *spec.frame_shape), dtype=torch.uint8)
        state = model.init_state(frames, random_actions(spec, 2, 3))
        for _ in range(3):
            state = model.step(state, random_actions(spec, 2), None).state
        assert model.decode(state).shape == (2, *spec.frame_shape)
        model.compute_loss(random_batch(spec, 2, 3))


def test_step_is_reproducible_with_a_generator():
    model = make_model()
    spec = model.spec
    frames = torch.randint(0, 256, (16, 2, *spec.frame_shape), dtype=torch.uint8)
    state = model.init_state(frames, random_actions(spec, 16, 2))
    actions = [random_actions(spec, 16) for _ in range(5)]

    def rollout(seed: int) -> list[torch.Tensor]:
        gen, s, out = torch.Generator().manual_seed(seed), state, []
        for a in actions:
            trans = model.step(s, a, gen)
            s = trans.state
            out += [s["stoch"], trans.reward, trans.cont_prob]
        return out

    first, again, other = rollout(1), rollout(1), rollout(2)
    for x, y in zip(first, again, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert any(not torch.equal(x, y) for x, y in zip(first, other, strict=True))


def test_inverse_cdf_sampler_matches_probabilities():
    probs = torch.tensor([[0.5, 0.25, 0.15, 0.07, 0.03], [0.02, 0.08, 0.3, 0.3, 0.3]])  # (G, K)
    n = 40_000
    gen = torch.Generator().manual_seed(0)
    index = sample_index(probs.expand(n, 2, 5), gen)  # (n, G)
    assert index.dtype == torch.int64 and index.min() >= 0 and index.max() <= 4
    for g in range(2):
        counts = torch.bincount(index[:, g], minlength=5).float()
        expected = n * probs[g]
        chi2 = ((counts - expected) ** 2 / expected).sum()
        assert chi2 < 18.5, (g, counts, expected)  # 99.9% quantile of chi2 with 4 dof


def test_sampler_one_hot_and_straight_through():
    logits = torch.randn(6, 4, 5, requires_grad=True)
    probs = unimix_probs(logits, 0.01)
    assert torch.all(probs >= 0.01 / 5 - 1e-7)
    sample = sample_onehot(probs, torch.Generator().manual_seed(0))
    torch.testing.assert_close(sample.detach().sum(-1), torch.ones(6, 4))
    assert set(sample.detach().unique().tolist()) <= {0.0, 1.0}
    (sample * torch.randn(6, 4, 5)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_free_bits_and_kl_balance():
    kl = torch.tensor([0.2, 0.9, 1.0, 3.0], requires_grad=True)
    out = free_bits(kl, 1.0)
    torch.testing.assert_close(out.detach(), torch.tensor([1.0, 1.0, 1.0, 3.0]))
    out.sum().backward()
    assert kl.grad[0] == 0 and kl.grad[1] == 0 and kl.grad[3] == 1

    p = torch.softmax(torch.randn(3, 4, 5), -1)
    torch.testing.assert_close(categorical_kl(p, p), torch.zeros(3), atol=1e-6, rtol=0)
    assert torch.all(categorical_kl(p, p.flip(-1)) >= 0)

    post_logits = torch.randn(3, 4, 5, requires_grad=True)
    prior_logits = torch.randn(3, 4, 5, requires_grad=True)
    post, prior = torch.softmax(post_logits, -1), torch.softmax(prior_logits, -1)
    loss, dyn, rep = kl_balance(post, prior, free_nats=0.0, dyn_scale=1.0, rep_scale=0.0)
    torch.testing.assert_close(dyn, rep)
    loss.sum().backward()
    assert post_logits.grad is None or post_logits.grad.abs().sum() == 0  # dyn trains prior only
    assert prior_logits.grad.abs().sum() > 0
    loss, _, _ = kl_balance(post, prior, free_nats=1e6, dyn_scale=0.5, rep_scale=0.1)
    torch.testing.assert_close(loss, torch.full((3,), 0.6e6))


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_is_first_resets_state_and_zeroes_action(kind):
    model = make_model(kind=kind)
    spec = model.spec
    b, t, k = 2, 6, 3
    frames = torch.randint(0, 256, (b, t, *spec.frame_shape), dtype=torch.uint8)
    actions = random_actions(spec, b, t)  # non-zero action at the reset step on purpose
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, k] = True
    with torch.no_grad():
        seq = model.posterior_rollout(frames, actions, is_first, sample=False)
        other = frames.clone()
        other[:, :k] = 255 - other[:, :k]  # a different past must not leak through the reset
        seq_other = model.posterior_rollout(other, actions, is_first, sample=False)
        fresh = model.init_state(frames[:, k:], actions[:, k:])  # first action is ignored
        changed = actions.clone()
        changed[:, k] = changed[:, k - 1] if kind == "discrete" else changed[:, k] + 5.0
        seq_changed = model.posterior_rollout(frames, changed, is_first, sample=False)
    for key in ("deter", "stoch"):
        torch.testing.assert_close(seq[key][:, k:], seq_other[key][:, k:])
        torch.testing.assert_close(seq[key][:, -1], fresh[key])
        torch.testing.assert_close(seq[key][:, k:], seq_changed[key][:, k:])
    assert not torch.allclose(seq["deter"][:, k - 1], seq_other["deter"][:, k - 1])


def test_make_spec_and_build():
    spec = rssm.make_spec((64, 64, 3), "discrete", 4, preset="tiny", overrides={"deter": 24})
    assert spec.family == "rssm" and spec.hparams["deter"] == 24
    assert spec.feature_dim == 24 + spec.hparams["stoch"] * spec.hparams["classes"]
    assert spec.context_len == rssm.PRESETS["tiny"].context_len
    again = ModelSpec.from_dict(spec.to_dict())
    model = build_model(again)
    assert isinstance(model, rssm.RSSMWorldModel) and model.spec == again
    assert family_make_spec("rssm", (32, 32, 1), "continuous", 2, preset="tiny").family == "rssm"
    with pytest.raises(ValueError, match="bogus.*valid keys.*deter"):
        rssm.make_spec((64, 64, 3), "discrete", 4, preset="tiny", overrides={"bogus": 1})
    with pytest.raises(ValueError, match="preset"):
        rssm.make_spec((64, 64, 3), "discrete", 4, preset="huge")
    with pytest.raises(ValueError, match="divisible by 2\\*\\*3"):
        rssm.make_spec((36, 36, 3), "discrete", 4, preset="tiny")
    with pytest.raises(ValueError, match=">= 16"):
        rssm.make_spec((12, 12, 3), "discrete", 4, preset="tiny")
    with pytest.raises(ValueError, match="conv_norm"):
        rssm.make_spec((64, 64, 3), "discrete", 4, preset="tiny", overrides={"conv_norm": "x"})


def test_state_dict_round_trip_and_bad_inputs():
    model = make_model(conv_norm="group")
    clone = rssm.build(model.spec)
    clone.load_state_dict(model.state_dict())
    spec = model.spec
    frames = torch.randint(0, 256, (2, 3, *spec.frame_shape), dtype=torch.uint8)
    actions = random_actions(spec, 2, 3)
    with torch.no_grad():
        torch.testing.assert_close(
            model.features(model.init_state(frames, actions)),
            clone.features(clone.init_state(frames, actions)),
        )
        with pytest.raises(ValueError, match="frames"):
            model.init_state(frames[..., :1], actions)
        with pytest.raises(ValueError, match="actions"):
            model.step(model.init_state(frames, actions), torch.zeros(5, dtype=torch.long), None)


def moving_square(b: int, t: int, size: int = 32, side: int = 8) -> SequenceBatch:
    """A square moved left/right by the action on a blue background; reward 1 for right."""
    gen = torch.Generator().manual_seed(0)
    frames = torch.zeros(b, t, size, size, 3, dtype=torch.uint8)
    frames[..., 2] = 40
    actions = torch.randint(0, 2, (b, t), generator=gen)
    actions[:, 0] = 0
    for i in range(b):
        x, y = torch.randint(0, size - side, (2,), generator=gen).tolist()
        for j in range(t):
            if j > 0:
                x = (x + (3 if actions[i, j] else -3)) % (size - side)
            frames[i, j, y : y + side, x : x + side, :2] = torch.tensor([255, 200], dtype=torch.uint8)
    rewards = (actions == 1).float()
    rewards[:, 0] = 0
    terminated = torch.zeros(b, t, dtype=torch.bool)
    terminated[:, -1] = True
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    return SequenceBatch(frames, actions, rewards, terminated, is_first)


def test_tiny_model_overfits_moving_square():
    batch = moving_square(4, 8)
    pixels = batch.frames.float() / 255.0
    mean_frame = pixels.mean(dim=(0, 1), keepdim=True)
    baseline = -10 * torch.log10((pixels - mean_frame).square().mean()).item()
    spec = rssm.make_spec((32, 32, 3), "discrete", 2, preset="tiny")
    torch.manual_seed(0)
    model = rssm.build(spec)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(220):
        loss, metrics = model.compute_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(metrics)
    assert history[-1]["loss"] < 0.1 * history[0]["loss"]
    assert history[-1]["reward_loss"] < 0.5 * history[0]["reward_loss"]
    assert history[-1]["psnr"] > baseline + 5.0, (history[-1]["psnr"], baseline)
    # the deterministic filter reconstructs the last frames as well
    with torch.no_grad():
        k = spec.context_len
        state = model.init_state(batch.frames[:, :k], batch.actions[:, :k])
        for t in range(k, batch.frames.shape[1]):
            state = model.observe(state, batch.frames[:, t], batch.actions[:, t])
        recon = model.decode(state).float() / 255.0
    psnr = -10 * torch.log10((recon - pixels[:, -1]).square().mean()).item()
    assert psnr > baseline + 3.0, (psnr, baseline)


def test_image_size_pools_inside_the_model():
    spec = family_make_spec("rssm", (64, 64, 3), "discrete", 2, preset="tiny",
                            overrides={"image_size": 32})
    model = build_model(spec)
    frames = torch.randint(0, 255, (2, 3, 64, 64, 3), dtype=torch.uint8)
    state = model.init_state(frames, torch.zeros(2, 3, dtype=torch.long))
    decoded = model.decode(state)
    assert decoded.shape == (2, 64, 64, 3) and decoded.dtype == torch.uint8
    # nearest upsampling: each 2x2 block is one model pixel
    assert torch.equal(decoded[:, ::2, ::2], decoded[:, 1::2, 1::2])
    bad = family_make_spec("rssm", (64, 64, 3), "discrete", 2, preset="tiny",
                           overrides={"image_size": 24})
    with pytest.raises(ValueError, match="image_size"):
        build_model(bad)


def _loss_with(model, batch, seed=0):
    torch.manual_seed(seed)  # the posterior samples from the global generator
    return model.compute_loss(batch, 0)


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_action_free_rows_ignore_their_actions(kind):
    model = make_model((16, 16, 3), kind)
    base = random_batch(model.spec, 3, 5)
    has_action = torch.ones(3, 5, dtype=torch.bool)
    has_action[1:] = False  # rows 1 and 2 are action-free
    batch = base._replace(has_action=has_action & ~base.is_first)
    other = batch._replace(actions=torch.where(
        has_action.view(3, 5, *([1] * (base.actions.ndim - 2))), base.actions,
        random_actions(model.spec, 3, 5)))
    assert not torch.equal(other.actions, batch.actions)
    loss_a, _ = _loss_with(model, batch)
    loss_b, _ = _loss_with(model, other)
    assert torch.equal(loss_a, loss_b)
    # labelled rows do see their actions
    changed = batch._replace(actions=random_actions(model.spec, 3, 5))
    assert not torch.equal(_loss_with(model, changed)[0], loss_a)


def test_reward_and_continue_heads_get_no_gradient_without_rewards():
    model = make_model((16, 16, 3))
    batch = random_batch(model.spec, 2, 4)
    batch = batch._replace(has_reward=torch.zeros(2, 4, dtype=torch.bool))
    loss, metrics = _loss_with(model, batch)
    loss.backward()
    for head in (model.reward_head, model.cont_head):
        for p in head.parameters():
            assert p.grad is None or not p.grad.any()
    assert "reward_loss" not in metrics and "psnr" in metrics
    assert any(p.grad is not None and p.grad.any() for p in model.decoder.parameters())


def test_padding_does_not_train():
    model = make_model((16, 16, 3))
    batch = random_batch(model.spec, 2, 5)
    valid = torch.ones(2, 5, dtype=torch.bool)
    valid[0, 3:] = False
    batch = batch._replace(valid=valid)
    noise = torch.randint(0, 256, batch.frames.shape, dtype=torch.uint8)
    padded = batch._replace(
        frames=torch.where(valid[..., None, None, None], batch.frames, noise),
        rewards=torch.where(valid, batch.rewards, 99.0),
        terminated=batch.terminated & valid | ~valid,
    )
    assert torch.equal(_loss_with(model, batch)[0], _loss_with(model, padded)[0])
