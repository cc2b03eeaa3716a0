"""The online Dreamer loop is reproducible: the same seed gives the same run, bit for bit.

CPU only and with the thread count fixed (tests/conftest.py pins one torch thread): float
reductions may depend on the thread count, see README "Reproducibility".
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
from safetensors.torch import load_file

from agents.dreamer import DreamerConfig
from agents.evaluate import load_policy
from agents.online import OnlineConfig, agent_dir, model_dir, run_online
from agents.online_progress import planned_updates

TINY = {"preset": "tiny", "prefill": 200, "steps_per_iteration": 200, "model_updates": 3,
        "agent_updates": 3, "batch_size": 4, "seq_len": 8, "eval_every": 400, "eval_episodes": 2,
        "num_envs": 4, "progress": False, "tensorboard": False, "real_steps": 600, "device": "cpu"}
AGENT = DreamerConfig(hidden=16, layers=1, batch_size=8, horizon=3)


def _weights(out: Path) -> dict:
    """Every tensor of the final agent and world model (with optimiser moments)."""
    tensors = load_file(str(agent_dir(out) / "agent.safetensors"))
    tensors |= {f"model.{k}": v for k, v in load_file(str(model_dir(out) / "model.safetensors")).items()}
    return tensors


def _run(out, seed: int, **extra) -> dict:
    record = run_online(OnlineConfig(out=str(out), seed=seed, **{**TINY, **extra}), AGENT)
    return {k: record[k] for k in ("curve", "episode_returns", "metrics", "imagined_steps",
                                   "model_updates", "agent_updates", "termination")}


def test_same_seed_same_run_and_counted_updates(tmp_path):
    first = _run(tmp_path / "a", seed=3)
    second = _run(tmp_path / "b", seed=3)
    assert first == second  # returns, losses, evaluation curve, termination fidelity: identical
    assert [row[0] for row in first["curve"]] == [400, 600]  # evaluated twice
    assert [row[0] for row in first["termination"]] == [400, 600]  # with the model's ends
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(a[k].equal(b[k]) for k in a), [k for k in a if not a[k].equal(b[k])]
    other = _run(tmp_path / "c", seed=4)
    assert other["episode_returns"] != first["episode_returns"]
    c = _weights(tmp_path / "c")
    assert not all(a[k].equal(c[k]) for k in a)
    # the progress bar's total is the work the loop does: prefill 5x, then per iteration
    planned = planned_updates(OnlineConfig(**TINY))
    assert planned == (3 * 5 + 3 + 3, 3 * 3)
    assert (first["model_updates"], first["agent_updates"]) == planned


def test_action_repeat_runs_and_is_reproducible(tmp_path):
    first = _run(tmp_path / "a", seed=0, action_repeat=2, real_steps=400)
    second = _run(tmp_path / "b", seed=0, action_repeat=2, real_steps=400)
    assert first == second
    # 400 env steps at 2 per decision: episodes of random CartPole are ~11 decisions long
    assert first["curve"][-1][0] == 400
    # `vwm evaluate` holds each action for as many steps as the agent was trained with
    policy = load_policy(str(tmp_path / "a"), "vwm/CartPolePixels-v0")
    assert policy.action_repeat == 2
    # its model steps 2 real steps at once, so the imagined env ends after 500 / 2 of them
    env = gym.make("vwm/Imagined-v0", checkpoint=str(model_dir(tmp_path / "a")), obs_mode="latent")
    assert env.unwrapped.max_episode_steps == 250
