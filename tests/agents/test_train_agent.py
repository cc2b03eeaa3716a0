"""`vwm train-agent`: SB3 and Dreamer inside a tiny world model, and clear errors on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.dreamer import DreamerPolicy
from agents.evaluate import LatentPolicy, evaluate_policy, load_policy, sidecar_path
from agents.train_agent import TrainAgentConfig
from benchmarks.cli import main as vwm

TASK = "vwm/CartPolePixels-v0"
QUIET = ["--no-progress"]


def test_defaults_are_full_size():
    cfg = TrainAgentConfig()
    assert (cfg.dreamer_batch, cfg.horizon, cfg.num_envs, cfg.progress) == (256, 15, 16, True)


def test_ppo_latent_from_the_command_line(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "ppo"
    code = vwm(["train-agent", "--algo", "ppo", "--checkpoint", tiny_checkpoint, "--obs-mode",
                "latent", "--steps", "256", "--num-envs", "4", "--out", str(out),
                "--eval-episodes", "2", *QUIET])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["path"] == str(out / "ppo.zip") and summary["imagined_steps"] >= 256
    assert json.loads(sidecar_path(out / "ppo.zip").read_text())["obs_mode"] == "latent"
    policy = load_policy(str(out / "ppo.zip"), TASK)
    assert isinstance(policy, LatentPolicy)
    assert len(evaluate_policy(policy, TASK, episodes=2, num_envs=2).returns) == 2


def test_dreamer_from_the_command_line(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "dreamer"
    code = vwm(["train-agent", "--algo", "dreamer", "--checkpoint", tiny_checkpoint,
                "--steps", "160", "--dreamer-batch", "16", "--horizon", "5", "--out", str(out),
                "--eval-episodes", "2", *QUIET])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["path"] == str(out) and len(summary["returns"]) == 2
    meta = json.loads((out / "agent.json").read_text())
    assert meta["config"]["batch_size"] == 16 and meta["config"]["horizon"] == 5
    assert meta["task"] == TASK
    policy = load_policy(str(out), TASK)
    assert isinstance(policy, DreamerPolicy)
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    action, _ = policy.predict(frames, episode_start=np.ones(3, bool))
    assert action.shape == (3,) and set(action.tolist()) <= {0, 1}
    assert len(evaluate_policy(policy, TASK, episodes=2, num_envs=2).returns) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--algo", "bogus", "--checkpoint", "x"], "unknown --algo 'bogus'"),
        (["--algo", "ppo"], "--checkpoint is required"),
        (["--algo", "dreamer", "--online"], "--online needs --task"),
        (["--algo", "ppo", "--online", "--task", TASK], "--online runs the Dreamer loop"),
    ],
)
def test_bad_inputs_exit_with_a_message(tmp_path, capsys, args, message):
    code = vwm(["train-agent", *args, "--out", str(tmp_path / "out"), *QUIET])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("vwm train-agent: error:") and message in err
    assert not (tmp_path / "out").exists()


def test_missing_checkpoint_exits_with_a_message(tmp_path, capsys):
    code = vwm(["train-agent", "--algo", "dreamer", "--checkpoint", str(tmp_path / "nope"),
                "--out", str(tmp_path / "out"), *QUIET])
    assert code == 1
    assert "nope" in capsys.readouterr().err
