"""The online Dreamer loop: runs end to end, and resumes without losing episodes."""

from __future__ import annotations

import json

from agents.dreamer import DreamerConfig
from agents.online import OnlineConfig, load_chunks, run_online

TINY = {"preset": "tiny", "prefill": 200, "steps_per_iteration": 200, "model_updates": 2,
        "agent_updates": 2, "batch_size": 4, "seq_len": 8, "eval_every": 0, "eval_episodes": 2,
        "num_envs": 4, "progress": False}
AGENT = DreamerConfig(hidden=16, layers=1, batch_size=8, horizon=3)


def test_online_loop_resumes_without_losing_episodes(tmp_path):
    out = tmp_path / "run"
    first = run_online(OnlineConfig(task="vwm/CartPolePixels-v0", out=str(out), real_steps=400,
                                    **TINY), AGENT)
    assert first["real_steps"] == 400 and first["iteration"] == 2
    kept = load_chunks(out / "replay", first["iteration"])
    assert len(kept) == len(first["episode_returns"]) > 0
    assert (out / "agent" / "agent.json").is_file() and (out / "checkpoint").is_dir()

    # a second call with a larger budget continues from the saved state
    second = run_online(OnlineConfig(task="vwm/CartPolePixels-v0", out=str(out), real_steps=800,
                                     **TINY), AGENT)
    assert second["real_steps"] == 800 and second["iteration"] == 4
    assert second["episode_returns"][: len(kept)] == first["episode_returns"]
    replay = load_chunks(out / "replay", second["iteration"])
    assert len(replay) == len(second["episode_returns"])
    for old, new in zip(kept, replay[: len(kept)]):
        assert (old["frames"] == new["frames"]).all()
    assert second["curve"][-1][0] == 800
    assert json.loads((out / "online.json").read_text())["real_steps"] == 800


def test_online_refuses_other_task(tmp_path):
    import pytest

    out = tmp_path / "run"
    run_online(OnlineConfig(task="vwm/CartPolePixels-v0", out=str(out), real_steps=200, **TINY),
               AGENT)
    with pytest.raises(ValueError, match="pick another --out"):
        run_online(OnlineConfig(task="vwm/AcrobotPixels-v0", out=str(out), real_steps=200, **TINY))
