"""State helpers, ModelSpec validation and the burn-in helpers of `world_models.base`."""

from __future__ import annotations

import pytest
import torch

from tests.synthetic import synthetic_spec
from world_models.base import ModelSpec, check_context, pad_context, reset_rows, select_rows


def test_select_and_reset_rows():
    state = {"h": torch.arange(6.0).reshape(3, 2)}
    assert torch.equal(select_rows(state, torch.tensor([2, 0]))["h"], torch.tensor([[4.0, 5], [0, 1]]))
    fresh = {"h": torch.full((1, 2), -1.0)}
    out = reset_rows(state, torch.tensor([False, True, False]), fresh)
    assert out["h"][1].tolist() == [-1.0, -1.0] and state["h"][1].tolist() == [2.0, 3.0]


def test_model_spec_needs_a_feature_dim():
    with pytest.raises(ValueError, match="feature_dim must be > 0"):
        ModelSpec(family="x", frame_shape=(8, 8, 3), action_kind="discrete", action_dim=2)
    with pytest.raises(ValueError, match="action_kind"):
        ModelSpec(family="x", frame_shape=(8, 8, 3), action_kind="box", action_dim=2, feature_dim=1)


def test_pad_context_repeats_the_first_frame_with_zero_actions():
    frames = torch.arange(2, dtype=torch.uint8).reshape(1, 2, 1, 1, 1).expand(1, 2, 2, 2, 1)
    actions = torch.tensor([[5, 7]])
    padded, acts = pad_context(frames, actions, 4)
    assert padded[0, :, 0, 0, 0].tolist() == [0, 0, 0, 1]
    assert acts.tolist() == [[0, 0, 0, 7]]  # actions[:, 0] ignored: the first frame starts an episode
    assert actions.tolist() == [[5, 7]]


def test_check_context_limits():
    spec = synthetic_spec(size=8, context_len=2)
    frames = torch.zeros(1, 3, 8, 8, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="1 to context_len = 2"):
        check_context(spec, frames, torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="actions must have shape"):
        check_context(spec, frames[:, :2], torch.zeros(1, 3, dtype=torch.long))
    check_context(spec, frames[:, :1], torch.zeros(1, 1, dtype=torch.long))
