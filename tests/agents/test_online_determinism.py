"""The online Dreamer loop is reproducible: the same seed gives the same run, bit for bit."""

from __future__ import annotations

from agents.dreamer import DreamerConfig
from agents.online import OnlineConfig, run_online
from agents.online_progress import planned_updates

TINY = {"preset": "tiny", "prefill": 200, "steps_per_iteration": 200, "model_updates": 3,
        "agent_updates": 3, "batch_size": 4, "seq_len": 8, "eval_every": 400, "eval_episodes": 2,
        "num_envs": 4, "progress": False, "tensorboard": False, "real_steps": 600}
AGENT = DreamerConfig(hidden=16, layers=1, batch_size=8, horizon=3)


def _run(out, seed: int) -> dict:
    record = run_online(OnlineConfig(out=str(out), seed=seed, **TINY), AGENT)
    return {k: record[k] for k in ("curve", "episode_returns", "metrics", "imagined_steps",
                                   "model_updates", "agent_updates")}


def test_same_seed_same_run_and_counted_updates(tmp_path):
    first = _run(tmp_path / "a", seed=3)
    second = _run(tmp_path / "b", seed=3)
    assert first == second  # returns, losses, evaluation curve: all identical
    assert _run(tmp_path / "c", seed=4)["episode_returns"] != first["episode_returns"]
    # the progress bar's total is the work the loop does: prefill 5x, then per iteration
    planned = planned_updates(OnlineConfig(**TINY))
    assert planned == (3 * 5 + 3 + 3, 3 * 3)
    assert (first["model_updates"], first["agent_updates"]) == planned
