"""`vwm train-agent`: SB3 and Dreamer inside a tiny world model, and clear errors on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.dreamer import DreamerPolicy
from agents.evaluate import LatentPolicy, evaluate_policy, load_policy
from agents.train_agent import TrainAgentConfig
from benchmarks.cli import main as vwm
from video_envs.sb3_zip import sidecar_path

TASK = "vwm/CartPolePixels-v0"
QUIET = ["--no-progress"]


def test_defaults_are_full_size():
    cfg = TrainAgentConfig()
    assert (cfg.agent.batch_size, cfg.agent.horizon, cfg.num_envs, cfg.progress) == (256, 15, 16, True)


def test_online_defaults_are_the_benchmarked_cartpole_recipe():
    from agents.online import OnlineConfig, model_overrides
    from benchmarks.suites import get_suite

    suite = get_suite("cartpole")
    assert suite.settings.online == {} and suite.settings.model_overrides == {}
    cfg = TrainAgentConfig().loop
    assert cfg == OnlineConfig()
    assert (cfg.steps_per_iteration, cfg.prefill, cfg.model_updates, cfg.agent_updates) == (500, 2500, 60, 60)
    assert model_overrides(cfg) == {"image_size": 32}


def test_every_online_option_reaches_the_loop(monkeypatch, tmp_path):
    from agents import train_agent

    seen = {}

    def fake_run_online(cfg, agent_cfg):
        seen.update(cfg=cfg, agent=agent_cfg)
        return {"curve": [[10, 1.0]], "real_steps": 10}

    monkeypatch.setattr(train_agent, "run_online", fake_run_online)
    code = vwm(["train-agent", "--algo", "dreamer", "--online", "--task", TASK, "--out", str(tmp_path),
                "--real-steps", "1000", "--real-steps-per-iter", "250", "--model-updates", "7",
                "--agent-updates", "3", "--prefill", "300", "--real-envs", "2", "--model-batch", "8",
                "--model-seq", "12", "--model-lr", "0.001", "--overrides", '{"deter": 64}',
                "--family", "rssm", "--preset", "tiny", "--device", "cpu", "--eval-every", "0",
                "--dreamer-batch", "32", "--horizon", "5", "--lambda", "0.9", "--actor-lr", "0.0002",
                "--no-tensorboard", *QUIET])
    assert code == 0
    cfg, agent = seen["cfg"], seen["agent"]
    assert (cfg.task, cfg.out, cfg.real_steps, cfg.steps_per_iteration, cfg.model_updates,
            cfg.agent_updates, cfg.prefill, cfg.num_envs, cfg.batch_size, cfg.seq_len, cfg.lr,
            cfg.overrides, cfg.family, cfg.preset, cfg.eval_every, cfg.tensorboard, cfg.progress) == (
        TASK, str(tmp_path), 1000, 250, 7, 3, 300, 2, 8, 12, 0.001, '{"deter": 64}', "rssm", "tiny",
        0, False, False)
    assert (agent.batch_size, agent.horizon, agent.lambda_, agent.actor_lr) == (32, 5, 0.9, 0.0002)


def test_family_must_match_the_checkpoint(tiny_checkpoint, tmp_path, capsys):
    code = vwm(["train-agent", "--algo", "dreamer", "--checkpoint", tiny_checkpoint, "--family", "other",
                "--out", str(tmp_path / "out"), *QUIET])
    assert code == 1
    assert "holds a 'rssm' model, not --family 'other'" in capsys.readouterr().err


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
