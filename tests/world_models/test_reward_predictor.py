"""The reward/termination predictor: prefix-consistent burn-in, masks, and it learns."""

from __future__ import annotations

import pytest
import torch

from world_models.base import ModelSpec
from world_models.batch import SequenceBatch
from world_models.reward_predictor import RewardPredictor, RewardPredictorConfig

SIZE = 16
SPEC = ModelSpec(family="test", frame_shape=(SIZE, SIZE, 3), action_kind="discrete", action_dim=2,
                 context_len=4, feature_dim=8)
CFG = RewardPredictorConfig(hidden=32, depth=8, image_size=16, embed=32, head_hidden=32)


def column_batch(batch: int, length: int, seed: int) -> SequenceBatch:
    """A bright column moved left (action 0) or right (action 1); reward 1 for a move right;
    the episode ends when the column reaches the right edge."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(SIZE - 6, SIZE - 1, (batch,), generator=g)
    actions = torch.randint(0, 2, (batch, length), generator=g)
    actions[:, 0] = 0
    frames = torch.zeros(batch, length, SIZE, SIZE, 3, dtype=torch.uint8)
    rewards = torch.zeros(batch, length)
    terminated = torch.zeros(batch, length, dtype=torch.bool)
    valid = torch.ones(batch, length, dtype=torch.bool)
    for t in range(length):
        if t:
            x = (x + actions[:, t] * 2 - 1).clamp(0, SIZE - 1)
            rewards[:, t] = actions[:, t].float()
            terminated[:, t] = x == SIZE - 1
        frames[torch.arange(batch), t, :, x] = 255
    is_first = torch.zeros(batch, length, dtype=torch.bool)
    is_first[:, 0] = True
    return SequenceBatch(frames, actions, rewards, terminated, is_first, valid)


def test_burn_in_is_prefix_consistent():
    torch.manual_seed(0)
    model = RewardPredictor(SPEC, CFG).eval()
    batch = column_batch(3, 4, seed=1)
    with torch.no_grad():
        full = model.burn_in(batch.frames, batch.actions)
        h = model.burn_in(batch.frames[:, :2], batch.actions[:, :2])
        for t in (2, 3):
            h = model.update(h, batch.frames[:, t - 1], batch.frames[:, t], batch.actions[:, t])
        unrolled = model.unroll(batch)[:, -1]
    torch.testing.assert_close(h, full)
    torch.testing.assert_close(unrolled, full)


def test_loss_ignores_rewards_the_masks_hide():
    torch.manual_seed(0)
    model = RewardPredictor(SPEC, CFG)
    batch = column_batch(4, 6, seed=2)
    hidden = torch.zeros(4, 6, dtype=torch.bool)
    hidden[:, 3:] = True
    masked = batch._replace(has_reward=~hidden)
    changed = masked._replace(rewards=torch.where(hidden, 1e6, batch.rewards),
                              terminated=batch.terminated | hidden)
    loss_a, _ = model.loss(masked)
    loss_b, _ = model.loss(changed)
    torch.testing.assert_close(loss_a, loss_b)


def test_learns_rewards_and_terminations_of_a_synthetic_video():
    torch.manual_seed(0)
    model = RewardPredictor(SPEC, CFG)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for step in range(200):
        loss, metrics = model.loss(column_batch(16, 8, seed=step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(metrics["reward_mae"])
    held_out = column_batch(64, 8, seed=10_000)
    with torch.no_grad():
        _, metrics = model.loss(held_out)
    assert sum(history[:5]) / 5 > 0.3
    assert metrics["reward_mae"] < 0.15, metrics
    assert metrics["termination_recall"] > 0.8, metrics


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="bogus"):
        RewardPredictorConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="image_size"):
        RewardPredictor(SPEC, RewardPredictorConfig(image_size=5))
