"""Evaluation on the real task: episode counts, reproducibility, policy loading, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.evaluate import RandomPolicy, evaluate_policy, load_policy
from agents.stats import bootstrap_ci, iqm
from benchmarks.cli import main as vwm

TASK = "vwm/CartPolePixels-v0"


def test_iqm_hand_computed():
    assert iqm([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert iqm([2.0, 4.0]) == pytest.approx(3.0)
    low, high = bootstrap_ci([5.0, 5.0, 5.0])
    assert low == high == 5.0


def test_reports_requested_episodes_and_reproduces():
    import gymnasium as gym

    space = gym.make(TASK).action_space
    a = evaluate_policy(RandomPolicy(space, 3), TASK, episodes=7, seed=11, num_envs=3)
    b = evaluate_policy(RandomPolicy(space, 3), TASK, episodes=7, seed=11, num_envs=3)
    assert len(a.returns) == len(a.lengths) == 7
    assert a.seeds == list(range(11, 18))
    assert a.returns == b.returns
    # CartPole gives +1 per step, so the return equals the length
    assert a.returns == [float(n) for n in a.lengths]


def test_seeds_fix_episodes_whatever_the_batching():
    """A constant policy makes episodes depend on the reset seed only."""

    class Left:
        def predict(self, obs, state=None, episode_start=None, deterministic=True):
            return np.zeros(obs.shape[0], dtype=np.int64), None

    a = evaluate_policy(Left(), TASK, episodes=6, seed=0, num_envs=6)
    b = evaluate_policy(Left(), TASK, episodes=6, seed=0, num_envs=2)
    assert a.returns == b.returns


def test_load_policy_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_policy(str(tmp_path / "missing.zip"), TASK)
    with pytest.raises(ValueError, match="needs --checkpoint"):
        load_policy("cem:horizon=5", TASK)
    with pytest.raises(ValueError, match="unknown policy"):
        load_policy("bogus", TASK)


def test_planner_policy_on_tiny_checkpoint(tiny_checkpoint):
    policy = load_policy("cem:horizon=4,candidates=16,iterations=2", TASK, tiny_checkpoint)
    result = evaluate_policy(policy, TASK, episodes=2, seed=0, num_envs=2)
    assert len(result.returns) == 2


def test_cli_json(capsys, tmp_path):
    video = tmp_path / "eval.mp4"
    code = vwm(["evaluate", "--task", TASK, "--episodes", "3", "--json", "--video", str(video)])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["returns"]) == 3 and out["task"] == TASK
    assert video.stat().st_size > 0


@pytest.mark.parametrize("spec", ["rs:horizon=2,candidates=4", "random_shooting:h=2", "cem:h=2,n=4",
                                  "mppi:h=2,n=4"])
def test_every_planner_alias_is_a_policy(tiny_checkpoint, spec):
    from agents.planning import Planner

    policy = load_policy(spec, TASK, checkpoint=tiny_checkpoint)
    assert isinstance(policy, Planner)


def test_vwm_evaluate_takes_the_rs_alias(tiny_checkpoint, capsys):
    """The command line, not only `load_policy`: ``vwm evaluate --policy rs:...`` runs."""
    code = vwm(["evaluate", "--task", TASK, "--policy", "rs:h=2,n=4", "--checkpoint", tiny_checkpoint,
                "--episodes", "1", "--num-envs", "1", "--device", "cpu", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["returns"]) == 1 and out["policy"].startswith("rs:")
