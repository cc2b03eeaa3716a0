"""The one imagination loop: fixed actions and a policy give the same rollout; noise is seeded."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import tiny_family_model
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


# ------------------------------------------------------------------ frames in, video out


@pytest.mark.parametrize("name", ["rssm", "windowed"])
def test_imagine_from_frames_shapes_types_and_seeding(name):
    import numpy as np

    from world_models.imagine import imagine_from_frames

    model = tiny_family_model(name)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)  # a 6-frame context
    context_actions = rng.integers(0, 3, 6)
    actions = rng.integers(0, 3, 5)
    video, rewards = imagine_from_frames(model, frames, actions, seed=1, context_actions=context_actions)
    assert isinstance(video, np.ndarray) and video.shape == (5, 16, 16, 3) and video.dtype == np.uint8
    assert rewards.shape == (5,)
    again = imagine_from_frames(model, frames, actions, seed=1, context_actions=context_actions)
    assert np.array_equal(again.video, video) and np.array_equal(again.rewards, rewards)
    one = imagine_from_frames(model, frames[0], actions)  # a single observation
    assert one.video.shape == (5, 16, 16, 3)
    batch = imagine_from_frames(model, torch.as_tensor(frames[None, :2]).expand(2, 2, 16, 16, 3),
                                torch.as_tensor(np.stack([actions, actions])), seed=1)
    assert isinstance(batch.video, torch.Tensor) and batch.video.shape == (2, 5, 16, 16, 3)
    assert batch.rewards.shape == (2, 5)
    with pytest.raises(ValueError, match="actions must have shape"):
        imagine_from_frames(model, frames[0], np.zeros((5, 2)))
    with pytest.raises(ValueError, match="obs must be"):
        imagine_from_frames(model, frames[:, :8], actions)


def test_imagine_from_frames_burns_in_longer_contexts_by_observing():
    """A context longer than context_len is burned in, then observed (prefix consistency)."""
    import numpy as np

    from world_models.base import burn_in
    from world_models.imagine import burn_in_frames

    model = tiny_family_model("windowed")  # context_len 3
    frames = np.random.default_rng(1).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    actions = np.array([0, 1, 2, 0, 1])
    state, batched = burn_in_frames(model, frames, actions)
    assert not batched
    t = torch.as_tensor(frames)[None]
    a = torch.as_tensor(actions)[None]
    expected = burn_in(model, t[:, :3], a[:, :3])
    for i in (3, 4):
        expected = model.observe(expected, t[:, i], a[:, i])
    torch.testing.assert_close(model.features(state), model.features(expected))
