"""DreamerV3 return maths: lambda-returns and percentile return normalisation."""

from __future__ import annotations

import json

import pytest
import torch

from agents.returns import ReturnNormalizer, lambda_returns, percentile_scale


def test_lambda_returns_hand_computed():
    # T = 3, one env, discount 0.9, lambda 0.5; the episode terminates after step 1
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    continues = torch.tensor([[1.0], [0.0], [1.0]])
    values = torch.tensor([[0.5], [1.0], [2.0], [4.0]])
    # R_3 = V_3 = 4
    # R_2 = 3 + 0.9 * 1 * (0.5 * 4 + 0.5 * 4)        = 3 + 3.6       = 6.6
    # R_1 = 2 + 0.9 * 0 * (...)                       = 2.0
    # R_0 = 1 + 0.9 * 1 * (0.5 * V_1 + 0.5 * R_1)     = 1 + 0.9 * 1.5 = 2.35
    expected = torch.tensor([[2.35], [2.0], [6.6]])
    out = lambda_returns(rewards, values, continues, discount=0.9, lambda_=0.5)
    torch.testing.assert_close(out, expected)


def test_lambda_one_is_discounted_monte_carlo_plus_bootstrap():
    torch.manual_seed(0)
    t, b, gamma = 6, 4, 0.95
    rewards, values = torch.randn(t, b), torch.randn(t + 1, b)
    continues = (torch.rand(t, b) > 0.2).float()
    out = lambda_returns(rewards, values, continues, discount=gamma, lambda_=1.0)
    for start in range(t):
        total, weight = torch.zeros(b), torch.ones(b)
        for k in range(start, t):
            total += weight * rewards[k]
            weight = weight * gamma * continues[k]
        total += weight * values[t]
        torch.testing.assert_close(out[start], total)


def test_lambda_zero_is_one_step_td():
    torch.manual_seed(1)
    t, b, gamma = 5, 3, 0.9
    rewards, values, continues = torch.randn(t, b), torch.randn(t + 1, b), torch.rand(t, b)
    out = lambda_returns(rewards, values, continues, discount=gamma, lambda_=0.0)
    torch.testing.assert_close(out, rewards + gamma * continues * values[1:])


def test_lambda_returns_rejects_bad_shapes():
    with pytest.raises(ValueError, match="values"):
        lambda_returns(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2), 0.9, 0.95)


def test_percentile_scale_is_one_for_small_spreads_and_the_range_otherwise():
    small = torch.linspace(0.0, 0.5, 101)
    assert percentile_scale(small).item() == 1.0
    wide = torch.linspace(0.0, 100.0, 101)  # P5 = 5, P95 = 95
    assert percentile_scale(wide).item() == pytest.approx(90.0)


def test_return_normalizer_ema_tracks_the_5_95_range():
    norm = ReturnNormalizer(decay=0.99)
    batch = torch.linspace(-10.0, 10.0, 1001)  # P5 = -9, P95 = 9
    norm.update(batch)
    # one EMA step from zero: low = 0.01 * -9, high = 0.01 * 9 -> spread 0.18 < 1
    assert norm.low.item() == pytest.approx(-0.09)
    assert norm.high.item() == pytest.approx(0.09)
    assert norm.scale.item() == 1.0
    for _ in range(999):
        norm.update(batch)
    assert norm.scale.item() == pytest.approx(18.0, rel=1e-3)
    adv = torch.tensor([18.0, -9.0])
    torch.testing.assert_close(norm.normalize(adv), adv / norm.scale, rtol=1e-6, atol=1e-6)
    # small returns never get amplified
    small = ReturnNormalizer(decay=0.5)
    for _ in range(50):
        small.update(torch.linspace(0.0, 0.1, 11))
    assert small.scale.item() == 1.0


def test_return_normalizer_state_round_trip():
    norm = ReturnNormalizer()
    norm.update(torch.arange(100.0))
    other = ReturnNormalizer()
    other.load_state(json.loads(json.dumps(norm.state())))
    assert other.scale.item() == pytest.approx(norm.scale.item())
