"""Tests of the shared heads: symlog, two-hot encoding and the reward/continue heads."""

from __future__ import annotations

import pytest
import torch

from world_models.heads import (
    ContinueHead,
    RewardHead,
    continue_loss,
    masked_mean,
    symexp,
    symlog,
    symlog_bins,
    twohot,
    twohot_loss,
    twohot_mean,
)


def test_symlog_symexp_are_inverse():
    x = torch.cat([torch.linspace(-1e4, 1e4, 1001), torch.linspace(-2, 2, 101)]).double()
    torch.testing.assert_close(symexp(symlog(x)), x)
    torch.testing.assert_close(symlog(symexp(x / 1e3)), x / 1e3)
    assert symlog(torch.tensor(0.0)) == 0.0
    assert torch.all(torch.diff(symlog(torch.sort(x).values)) >= 0)


def test_twohot_weights_sum_to_one_on_two_neighbours():
    bins = symlog_bins()
    x = torch.tensor([-1e12, -5.0, -0.3, 0.0, 0.7, 3.0, 1e12])
    weights = twohot(x, bins)  # (7, 255)
    assert weights.shape == (7, 255)
    torch.testing.assert_close(weights.sum(-1), torch.ones(7))
    assert torch.all((weights > 0).sum(-1) <= 2)
    assert weights[0, 0] == 1.0 and weights[-1, -1] == 1.0  # clipped to the outer bins


@pytest.mark.parametrize("num_bins, low, high", [(255, -20.0, 20.0), (41, -5.0, 5.0)])
def test_twohot_round_trip(num_bins, low, high):
    bins = symlog_bins(num_bins, low, high)
    x = torch.cat([torch.linspace(-100, 100, 2001), torch.linspace(-1, 1, 201)])
    logits = torch.log(twohot(x, bins))  # -inf off the two bins
    torch.testing.assert_close(twohot_mean(logits, bins), x, rtol=1e-4, atol=1e-4)


def test_twohot_mean_defaults_to_symlog_bins():
    logits = torch.zeros(3, 255)
    torch.testing.assert_close(twohot_mean(logits), torch.zeros(3), atol=1e-5, rtol=0)


def test_twohot_loss_is_minimised_at_the_target():
    target = torch.tensor([-12.0, -0.5, 0.0, 2.5, 300.0])
    logits = torch.zeros(5, 255, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.5)
    for _ in range(300):
        opt.zero_grad()
        twohot_loss(logits, target).sum().backward()
        opt.step()
    pred = twohot_mean(logits.detach())
    torch.testing.assert_close(pred, target, rtol=0.02, atol=0.02)
    # the exact two-hot distribution beats a shifted one
    exact = torch.log(twohot(target, symlog_bins()) + 1e-9)
    shifted = torch.log(twohot(target + 1.0, symlog_bins()) + 1e-9)
    assert torch.all(twohot_loss(exact, target) < twohot_loss(shifted, target))


def test_reward_head_starts_at_zero_and_learns():
    torch.manual_seed(0)
    head = RewardHead(in_dim=6, hidden=16, num_bins=51, low=-5.0, high=5.0)
    feats = torch.randn(32, 6)
    assert head(feats).shape == (32, 51)
    torch.testing.assert_close(head.predict(feats), torch.zeros(32))
    target = 10.0 * feats[:, 0]
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    first = head.loss(feats, target).mean().item()
    for _ in range(200):
        opt.zero_grad()
        head.loss(feats, target).mean().backward()
        opt.step()
    assert head.loss(feats, target).mean().item() < 0.3 * first
    assert (head.predict(feats) - target).abs().mean() < 1.0


def test_continue_head_shapes_and_loss():
    torch.manual_seed(0)
    head = ContinueHead(in_dim=6, hidden=16, layers=2)
    feats = torch.randn(4, 5, 6)
    prob = head.prob(feats)
    assert prob.shape == (4, 5) and torch.all((prob > 0) & (prob < 1))
    loss = head.loss(feats, torch.ones(4, 5))
    assert loss.shape == (4, 5) and torch.all(loss > 0)
    zero = ContinueHead(in_dim=6, zero_init=True)
    torch.testing.assert_close(zero.prob(feats), torch.full((4, 5), 0.5))


def test_continue_loss_weighs_terminal_steps_hand_computed():
    logits = torch.tensor([[2.0, -1.0, 0.5]])  # (B, T)
    terminated = torch.tensor([[False, True, False]])
    mask = torch.tensor([[True, True, False]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, (~terminated).float(), reduction="none")
    expected = (bce[0, 0] + 4.0 * bce[0, 1]) / 2  # per valid step; the masked one is left out
    torch.testing.assert_close(continue_loss(logits, terminated, mask, 4.0), expected)
    plain = continue_loss(logits, terminated, mask, 1.0)
    torch.testing.assert_close(plain, masked_mean(bce, mask))  # weight 1: the masked mean
    assert continue_loss(logits, terminated, torch.zeros_like(mask), 4.0).item() == 0.0


def _fit_termination(terminal_weight: float) -> float:
    """Recall of a logistic continue head fitted to rare, uncertain terminations."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 2, generator=gen)  # (N, 2) features
    risky = x[:, 0] > 1.5  # ~7% of steps, where an end is possible but not certain
    p_end = torch.where(risky, 0.35, 0.002)
    terminated = torch.rand(4096, generator=gen) < p_end  # (N,) ~2.6% terminal
    head = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    mask = torch.ones(1, 4096, dtype=torch.bool)
    for _ in range(300):
        loss = continue_loss(head(x).T, terminated[None], mask, terminal_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        predicted_end = torch.sigmoid(head(x)[:, 0]) < 0.5
    return float(predicted_end[terminated].float().mean())


def test_balanced_continue_loss_predicts_rare_uncertain_endings():
    # unweighted, no state is more likely to end than to go on: the head never predicts an end
    assert _fit_termination(1.0) < 0.1
    # weight 5 predicts an end where P(end) > 1/6 (as far as a linear head can draw it)
    assert _fit_termination(5.0) > 0.4  # 0.56 here, against 0.02 unweighted
