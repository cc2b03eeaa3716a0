"""SB3 agents trained inside imagination (and on the real task): saved zips, sidecars, loading."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.evaluate import FrameStackPolicy, LatentPolicy, evaluate_policy, load_policy
from agents.sb3 import SB3Config, train_sb3_in_imagination, train_sb3_real
from video_envs.sb3_zip import sidecar_path

TASK = "vwm/CartPolePixels-v0"
PENDULUM = "vwm/PendulumPixels-v0"

SMALL = {
    "ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
    "dqn": {"learning_starts": 64, "buffer_size": 512, "batch_size": 16, "train_freq": 4,
            "target_update_interval": 64},
    "sac": {"learning_starts": 64, "buffer_size": 512, "batch_size": 16, "train_freq": 4,
            "policy_kwargs": {"net_arch": [32, 32]}},
}


def tiny_cfg(algo: str, obs_mode: str = "latent", **kw) -> SB3Config:
    """A few hundred imagined steps with small SB3 sizes and no progress bar."""
    return SB3Config(algo=algo, obs_mode=obs_mode, steps=256, num_envs=4, eval_episodes=2,
                     algo_kwargs=dict(SMALL[algo]), progress=False, **kw)


def test_progress_bar_is_optional():
    assert SB3Config().progress is True
    assert tiny_cfg("ppo").progress is False


def test_progress_is_vwms_one_bar_style(tiny_checkpoint, tmp_path, capsys):
    from dataclasses import replace

    train_sb3_in_imagination(tiny_checkpoint, replace(tiny_cfg("ppo"), progress=True), tmp_path / "agent")
    err = capsys.readouterr().err
    assert "ppo in imagination" in err and "step" in err, err[-500:]
    assert "━" not in err, "SB3's own rich progress bar is not used"


@pytest.mark.parametrize(
    ("algo", "obs_mode"), [("ppo", "latent"), ("dqn", "latent"), ("ppo", "pixels"), ("dqn", "pixels")]
)
def test_train_in_imagination_saves_loadable_agent(tiny_checkpoint, tmp_path, algo, obs_mode):
    import stable_baselines3 as sb3

    out = tmp_path / "agent"
    result = train_sb3_in_imagination(tiny_checkpoint, tiny_cfg(algo, obs_mode), out)
    zip_path = Path(result["path"])
    assert zip_path == out / f"{algo}.zip" and zip_path.is_file()
    assert result["imagined_steps"] >= 256
    assert np.isfinite(result["real_return"]) and result["real_return"] > 0
    # the sidecar says how to feed the agent real observations
    meta = json.loads(sidecar_path(zip_path).read_text())
    assert meta["algo"] == algo and meta["obs_mode"] == obs_mode
    assert meta["task"] == TASK and meta["trained_in"] == "imagination"
    if obs_mode == "latent":
        assert meta["frame_stack"] == 1 and meta["world_model"] == "world_model"
        assert (out / "world_model" / "config.json").is_file()
    else:
        assert meta["frame_stack"] == 4 and meta["world_model"] is None
    # plain SB3 loads the zip and acts on an observation of the trained shape
    model = getattr(sb3, algo.upper()).load(str(zip_path))
    shape = model.observation_space.shape
    if obs_mode == "latent":
        assert len(shape) == 1 and model.observation_space.dtype == np.float32
        obs = np.zeros((3, *shape), np.float32)
    else:
        assert model.observation_space.dtype == np.uint8
        assert sorted(shape) == sorted((64, 64, 12))  # 4 stacked RGB frames (maybe transposed)
        obs = np.zeros((3, *shape), np.uint8)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (3,) and set(action.tolist()) <= {0, 1}
    # vwm's loader wraps it so it acts on real frames
    policy = load_policy(str(zip_path), TASK)
    assert isinstance(policy, LatentPolicy if obs_mode == "latent" else FrameStackPolicy)
    evaluation = evaluate_policy(policy, TASK, episodes=2, seed=0, num_envs=2)
    assert len(evaluation.returns) == 2 and min(evaluation.returns) > 0


def test_zip_loads_without_vwm(tiny_checkpoint, tmp_path):
    """A fresh interpreter with only SB3 imported loads the zip and predicts."""
    result = train_sb3_in_imagination(tiny_checkpoint, tiny_cfg("ppo"), tmp_path)
    script = (
        "import sys, numpy as np\n"
        "from stable_baselines3 import PPO\n"
        f"model = PPO.load({result['path']!r}, device='cpu')\n"
        "obs = np.zeros((2, *model.observation_space.shape), np.float32)\n"
        "action, _ = model.predict(obs)\n"
        "leaked = [m for m in ('video_envs', 'world_models', 'agents') if m in sys.modules]\n"
        "print(action.shape, leaked)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(2,) []"


def test_sac_on_continuous_task(tiny_pendulum_checkpoint, tmp_path):
    from stable_baselines3 import SAC

    result = train_sb3_in_imagination(tiny_pendulum_checkpoint, tiny_cfg("sac"), tmp_path)
    model = SAC.load(result["path"])
    low, high = model.action_space.low, model.action_space.high
    obs = np.zeros((2, *model.observation_space.shape), np.float32)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (2, *model.action_space.shape)
    assert np.all(action >= low) and np.all(action <= high)
    policy = load_policy(result["path"], PENDULUM)
    evaluation = evaluate_policy(policy, PENDULUM, episodes=2, seed=0, num_envs=2)
    assert len(evaluation.returns) == 2 and np.all(np.isfinite(evaluation.returns))


def test_algorithm_must_fit_action_space(tiny_checkpoint, tiny_pendulum_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="DQN needs discrete actions"):
        train_sb3_in_imagination(tiny_pendulum_checkpoint, tiny_cfg("dqn"), tmp_path)
    with pytest.raises(ValueError, match="SAC needs continuous"):
        train_sb3_in_imagination(tiny_checkpoint, tiny_cfg("sac"), tmp_path)
    with pytest.raises(ValueError, match="unknown SB3 algorithm"):
        train_sb3_in_imagination(tiny_checkpoint, SB3Config(algo="trpo", progress=False), tmp_path)
    assert not any(tmp_path.iterdir())  # nothing was written


def test_real_env_baseline(tmp_path):
    from stable_baselines3 import PPO

    cfg = SB3Config(algo="ppo", steps=256, num_envs=2, eval_episodes=2, eval_every=128,
                    algo_kwargs=dict(SMALL["ppo"]), progress=False)
    result = train_sb3_real(TASK, cfg, tmp_path)
    assert result["real_steps"] >= 256
    assert [steps for steps, _ in result["history"]] == [128, 256]  # the last one is the final
    meta = json.loads(sidecar_path(result["path"]).read_text())
    assert meta == {"algo": "ppo", "obs_mode": "pixels", "task": TASK, "frame_stack": 4,
                    "trained_in": "real"}
    model = PPO.load(result["path"])
    assert sorted(model.observation_space.shape) == sorted((64, 64, 12))
    policy = load_policy(result["path"], TASK)
    assert isinstance(policy, FrameStackPolicy)
    assert len(evaluate_policy(policy, TASK, episodes=2, num_envs=2).returns) == 2
