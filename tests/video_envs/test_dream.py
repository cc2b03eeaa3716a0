"""Real | imagined rollouts and the `vwm dream` command."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import video_envs.dream as dream
from benchmarks.cli import main
from tests.synthetic import SyntheticWorldModel, synthetic_spec

TASK = "vwm/CartPolePixels-v0"


def cartpole_model() -> SyntheticWorldModel:
    return SyntheticWorldModel(spec=dataclasses.replace(synthetic_spec(), action_dim=2), noise=0.05)


@pytest.fixture
def tiny_ckpt(request):
    try:
        return request.getfixturevalue("tiny_checkpoint")
    except pytest.FixtureLookupError:
        pytest.skip("tiny_checkpoint fixture not defined yet")


def test_dream_rollout_streams_are_aligned_and_seeded():
    model = cartpole_model()
    out = dream.dream_rollout(model, TASK, steps=300, seed=3)
    real, imagined, real_rewards, imagined_rewards = out
    assert real.shape == imagined.shape and real.shape[1:] == (64, 64, 3) and real.dtype == np.uint8
    assert len(real_rewards) == len(imagined_rewards) == len(real)
    assert real_rewards[0] == 0.0 and real_rewards[1:].min() == 1.0
    assert len(real) < 301  # random CartPole ends well before 300 steps: the rollout stops there
    again = dream.dream_rollout(model, TASK, steps=300, seed=3)
    np.testing.assert_array_equal(real, again.real)
    np.testing.assert_array_equal(imagined, again.imagined)
    short = dream.dream_rollout(model, TASK, steps=5, seed=3)
    assert len(short.real) == 6


def test_dream_rollout_errors():
    with pytest.raises(ValueError, match="task"):
        dream.dream_rollout(cartpole_model(), None)
    with pytest.raises(Exception, match="Discrete"):
        dream.dream_rollout(SyntheticWorldModel(), TASK, steps=2)


def test_dream_command_writes_video(tmp_path, monkeypatch):
    model = cartpole_model()
    original = dream.dream_rollout

    def fake(checkpoint, task, steps, seed, device):  # the synthetic model instead of a checkpoint
        return original(model, task, steps, seed, device)

    monkeypatch.setattr(dream, "dream_rollout", fake)
    out = tmp_path / "dream.gif"
    assert main(["dream", "--checkpoint", "unused", "--task", TASK, "--steps", "4", "--out", str(out)]) == 0
    assert out.stat().st_size > 0


def test_dream_from_tiny_checkpoint(tiny_ckpt, tmp_path):
    out = tmp_path / "dream.mp4"
    cfg = dream.DreamConfig(checkpoint=str(tiny_ckpt), steps=10, out=str(out), seed=0)
    assert dream.dream_from_config(cfg) == out and out.stat().st_size > 0
    rollout = dream.dream_rollout(str(tiny_ckpt), None, steps=10, seed=0)
    assert rollout.real.shape == rollout.imagined.shape


def test_dream_comparison_plays_the_real_episode_once_for_every_model():
    a, b = cartpole_model(), cartpole_model()
    b.noise = 0.2
    out = dream.dream_comparison([a, b], TASK, steps=30, seed=3)
    assert len(out.imagined) == len(out.imagined_rewards) == 2
    assert all(s.shape == out.real.shape for s in out.imagined)
    single = dream.dream_rollout(b, TASK, steps=30, seed=3)
    assert np.array_equal(single.real, out.real) and np.array_equal(single.imagined, out.imagined[1])
    with pytest.raises(ValueError, match="at least one model"):
        dream.dream_comparison([], TASK)
