"""The online Dreamer loop: runs end to end, resumes without losing episodes, and resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from agents import online
from agents.dreamer import DreamerConfig
from agents.online import OnlineConfig, agent_dir, load_chunks, model_dir, run_online, state_dir

TASK = "vwm/CartPolePixels-v0"
TINY = {"preset": "tiny", "prefill": 200, "steps_per_iteration": 200, "model_updates": 2,
        "agent_updates": 2, "batch_size": 4, "seq_len": 8, "eval_every": 0, "eval_episodes": 2,
        "num_envs": 4, "progress": False, "tensorboard": False}
AGENT = DreamerConfig(hidden=16, layers=1, batch_size=8, horizon=3)


def test_online_loop_resumes_without_losing_episodes(tmp_path):
    out = tmp_path / "run"
    first = run_online(OnlineConfig(task=TASK, out=str(out), real_steps=400, **TINY), AGENT)
    assert first["real_steps"] == 400 and first["iteration"] == 2
    kept = load_chunks(out / "replay", first["iteration"])
    assert len(kept) == len(first["episode_returns"]) > 0
    assert (agent_dir(out) / "agent.json").is_file() and (model_dir(out) / "config.json").is_file()

    # a second call with a larger budget continues from the saved state
    second = run_online(OnlineConfig(task=TASK, out=str(out), real_steps=800, **TINY), AGENT)
    assert second["real_steps"] == 800 and second["iteration"] == 4
    assert second["episode_returns"][: len(kept)] == first["episode_returns"]
    replay = load_chunks(out / "replay", second["iteration"])
    assert len(replay) == len(second["episode_returns"])
    for old, new in zip(kept, replay[: len(kept)]):
        assert (old["frames"] == new["frames"]).all()
    assert second["curve"][-1][0] == 800
    assert json.loads((state_dir(out) / "online.json").read_text())["real_steps"] == 800


def test_online_refuses_other_task(tmp_path):
    out = tmp_path / "run"
    run_online(OnlineConfig(task=TASK, out=str(out), real_steps=200, **TINY), AGENT)
    with pytest.raises(ValueError, match="pick another --out"):
        run_online(OnlineConfig(task="vwm/AcrobotPixels-v0", out=str(out), real_steps=200, **TINY))


class _Killed(Exception):
    pass


def _tensors(out) -> dict[str, torch.Tensor]:
    found = {}
    for folder in (agent_dir(out), model_dir(out)):
        for file in sorted(folder.glob("*.safetensors")):
            found.update({f"{file.name}/{k}": v for k, v in load_file(str(file)).items()})
    return found


@pytest.mark.parametrize("family", ["rssm", "windowed"])
def test_resume_after_a_kill_reproduces_the_uninterrupted_run(family, tmp_path, monkeypatch):
    """Also for a family with EMA weights (the windowed test family): they are committed with
    the loop state, restored on resume, and are what the agent imagines and acts with."""
    if family == "windowed":
        from tests.windowed_family import WindowedFamily
        from world_models import families

        monkeypatch.setitem(families.FAMILIES, "windowed", WindowedFamily())
    cfg = {**TINY, "prefill": 100, "steps_per_iteration": 100, "model_updates": 3, "family": family}
    whole = run_online(OnlineConfig(task=TASK, out=str(tmp_path / "whole"), real_steps=400, **cfg), AGENT)

    commit = online._commit

    def commit_then_die(out, loop, *args):
        commit(out, loop, *args)
        if loop.progress["iteration"] == 2:  # killed right after the second commit
            raise _Killed

    monkeypatch.setattr(online, "_commit", commit_then_die)
    run_cfg = OnlineConfig(task=TASK, out=str(tmp_path / "split"), real_steps=400, **cfg)
    with pytest.raises(_Killed):
        run_online(run_cfg, AGENT)
    monkeypatch.setattr(online, "_commit", commit)
    (tmp_path / "split" / "replay" / "chunk_000003.npz").write_bytes(b"an unfinished iteration")
    resumed = run_online(run_cfg, AGENT)

    for key in ("real_steps", "iteration", "imagined_steps", "curve", "episode_returns", "metrics"):
        assert resumed[key] == whole[key], key
    a, b = _tensors(tmp_path / "whole"), _tensors(tmp_path / "split")
    assert a.keys() == b.keys() and any(k.startswith("agent.safetensors/actor_opt.") for k in a)
    assert any(k.startswith("ema.safetensors/") for k in a) == (family == "windowed")
    for key in a:
        assert torch.equal(a[key], b[key]), key
