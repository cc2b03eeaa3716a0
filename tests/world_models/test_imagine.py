"""The one imagination loop: fixed actions and a policy give the same rollout; noise is seeded."""

from __future__ import annotations

import pytest
import torch

from tests.synthetic import SyntheticWorldModel, synthetic_context
from world_models.imagine import imagine


def test_actions_and_policy_agree_and_shapes_are_time_first():
    model = SyntheticWorldModel(noise=0.05)
    state = model.init_state(*synthetic_context(model, 3))
    actions = torch.tensor([[2, 2, 0, 1], [0, 0, 0, 0], [1, 2, 1, 2]])  # (B, H)
    fixed = imagine(model, state, actions, noise=torch.Generator().manual_seed(0), features=True,
                    decode=True)
    assert fixed.rewards.shape == fixed.continues.shape == (4, 3) and fixed.actions.shape == (4, 3)
    assert fixed.features.shape == (5, 3, 2) and fixed.frames.shape == (4, 3, 64, 64, 3)
    t = iter(range(4))

    def replay(features):
        a = actions[:, next(t)]
        return a, a

    policy = imagine(model, state, replay, 4, torch.Generator().manual_seed(0))
    assert policy.frames is None
    for name in ("actions", "rewards", "continues", "features"):
        assert torch.equal(getattr(fixed, name), getattr(policy, name)), name
    assert torch.equal(fixed.state["pos"], policy.state["pos"])
    other = imagine(model, state, actions, noise=torch.Generator().manual_seed(1))
    assert not torch.equal(other.rewards, fixed.rewards)


def test_a_policy_needs_a_horizon():
    model = SyntheticWorldModel()
    state = model.init_state(*synthetic_context(model, 1))
    with pytest.raises(ValueError, match="horizon"):
        imagine(model, state, lambda f: (f, f))
