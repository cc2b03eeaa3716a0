"""The Dreamer actor's continuous policy and the actor gradients (DreamerV3)."""

from __future__ import annotations

import math

import pytest
import torch

from agents.actor import Actor, bounded_normal
from agents.dreamer import DreamerAgent, DreamerConfig, Rollout
from agents.returns import ReturnNormalizer
from tests.synthetic import synthetic_spec


def _hand_normal(raw: torch.Tensor, min_std: float, max_std: float) -> torch.distributions.Normal:
    """The policy built by hand from the network's raw output (..., 2A)."""
    mean, std = raw.chunk(2, -1)
    scale = min_std + (max_std - min_std) / (1 + torch.exp(-(std + 2)))
    return torch.distributions.Normal(torch.tanh(mean), scale)


def test_continuous_log_prob_and_entropy_match_a_hand_built_normal():
    torch.manual_seed(0)
    cfg = DreamerConfig(hidden=8, layers=1, min_std=0.1, max_std=1.0)
    actor = Actor(5, synthetic_spec("continuous"), cfg)
    feats = torch.randn(7, 5)
    raw = actor.net(feats)  # (7, 2A)
    hand = _hand_normal(raw, 0.1, 1.0)
    dist = actor.distribution(feats)
    actions = torch.rand(7, hand.loc.shape[-1]) * 2 - 1  # (7, A) in [-1, 1]
    torch.testing.assert_close(dist.log_prob(actions), hand.log_prob(actions).sum(-1))
    # entropy of a Normal: 0.5 log(2 pi e sigma^2), summed over action dimensions
    expected = (0.5 * torch.log(2 * math.pi * math.e * hand.scale ** 2)).sum(-1)
    torch.testing.assert_close(dist.entropy(), expected)
    # no tanh on samples: the density needs no Jacobian term; bounds of mean and std hold
    assert (dist.base_dist.loc.abs() < 1).all()
    assert ((dist.base_dist.scale > 0.1) & (dist.base_dist.scale < 1.0)).all()


def test_bounded_normal_std_limits():
    dist = bounded_normal(torch.zeros(3), torch.tensor([-100.0, 0.0, 100.0]), 0.2, 0.8)
    torch.testing.assert_close(dist.base_dist.scale[[0, 2]], torch.tensor([0.2, 0.8]))
    middle = 0.2 + 0.6 * torch.sigmoid(torch.tensor(2.0)).item()
    assert dist.base_dist.scale[1].item() == pytest.approx(middle)


def test_samples_are_clipped_with_a_straight_through_gradient():
    cfg = DreamerConfig(hidden=8, layers=1)
    actor = Actor(3, synthetic_spec("continuous"), cfg)
    feats = torch.randn(64, 3)
    with torch.no_grad():
        actor.net[-1].bias.fill_(0.0)
        actor.net[-1].weight.fill_(0.0)
        actor.net[-1].bias[0] = 5.0  # mean tanh(5) ~ 1: about half the samples fall past 1
    sample = actor.sample(feats, torch.Generator().manual_seed(0))  # (64, A)
    assert sample.abs().max() <= 1.0 and (sample == 1.0).any()
    sample.sum().backward()
    assert actor.net[-1].bias.grad[0] != 0  # the gradient passes the clip


class _Linear(torch.nn.Module):
    """A differentiable toy: reward is the action, features are the action."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))


def _rollout(agent: DreamerAgent, wm: _Linear, h: int = 4, b: int = 16) -> Rollout:
    feats = [torch.zeros(b, 2)]
    actions, rewards = [], []
    gen = torch.Generator().manual_seed(0)
    for _ in range(h):
        action = agent.actor.sample(feats[-1], gen)  # (B, 1)
        actions.append(action)
        rewards.append(wm.w * action[:, 0])
        feats.append(torch.cat([action, action], -1))
    return Rollout(torch.stack(feats), torch.stack(actions), torch.stack(rewards), torch.ones(h, b))


@pytest.mark.parametrize("grad", ["backprop", "reinforce"])
def test_actor_update_touches_only_the_actor(grad):
    torch.manual_seed(0)
    spec = synthetic_spec("continuous")  # feature_dim 2
    agent = DreamerAgent(spec, DreamerConfig(hidden=8, layers=1, continuous_grad=grad))
    assert agent.backprop == (grad == "backprop")
    wm = _Linear()
    before = [p.detach().clone() for p in agent.actor.parameters()]
    agent.update(_rollout(agent, wm))
    assert wm.w.grad is None  # the model is never trained by the actor's loss
    assert any(not torch.equal(a, p) for a, p in zip(before, agent.actor.parameters()))


def test_backprop_raises_the_reward_of_a_differentiable_model():
    torch.manual_seed(0)
    spec = synthetic_spec("continuous")  # feature_dim 2
    agent = DreamerAgent(spec, DreamerConfig(hidden=16, layers=1, actor_lr=1e-2))
    wm = _Linear()
    first = float(_rollout(agent, wm).rewards.mean())
    for _ in range(30):
        agent.update(_rollout(agent, wm))
    assert float(_rollout(agent, wm).rewards.mean()) > first + 0.3


def test_continuous_grad_is_checked():
    with pytest.raises(ValueError, match="continuous_grad"):
        DreamerConfig(continuous_grad="dynamics")


def test_return_normalizer_never_amplifies_small_returns():
    norm = ReturnNormalizer(decay=0.0)
    assert float(norm.update(torch.linspace(0.0, 0.5, 101))) == 1.0  # floor of 1
    assert float(norm.update(torch.linspace(0.0, 100.0, 101))) == pytest.approx(90.0)  # P95 - P5
    torch.testing.assert_close(norm.normalize(torch.tensor([90.0])), torch.tensor([1.0]))
