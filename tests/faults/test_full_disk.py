"""A full disk or a read-only output folder while saving a checkpoint, a dataset or a result
JSON: a `SaveError` naming the path and the cause (a one-line message from the CLI), the
previous version intact, no temporary left behind, and a retry succeeds once there is room."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_family_model
from tests.faults.conftest import CAUSES
from tests.faults.harness import ROOT
from video_envs.collect import CollectConfig, collect, minari_root
from world_models.atomic import SaveError, write_json_atomic
from world_models.checkpoint import ContextBank, load_checkpoint, save_checkpoint

MODES = ["full", "read-only"]
DATASET = "vwm/cartpole/disk-v0"


def contexts() -> ContextBank:
    return ContextBank(torch.zeros((2, 1, 16, 16, 3), dtype=torch.uint8),
                       torch.zeros((2, 1), dtype=torch.int64))


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("mode", MODES)
def test_checkpoint_save_fails_clearly_and_keeps_the_previous_one(disk, mode):
    path = disk.path / "run" / "checkpoint"
    model = tiny_family_model("rssm")
    save_checkpoint(path, model, contexts(), {"step": 1})
    first = weights(model)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    disk.block(mode, leave=64 * 1024)
    with pytest.raises(SaveError, match=CAUSES) as info:
        save_checkpoint(path, model, contexts(), {"step": 2})
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    print(info.value)
    disk.restore()
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint"]  # the partial one is gone
    loaded = load_checkpoint(path)
    assert loaded.step == 1
    assert all(torch.equal(v, first[k]) for k, v in loaded.model.state_dict().items())
    save_checkpoint(path, model, contexts(), {"step": 2})  # room again: it saves
    assert load_checkpoint(path).step == 2


def _collect(root: Path, append: bool = False, dataset: str = DATASET):
    with minari_root(root):
        return collect(CollectConfig(task="vwm/CartPolePixels-v0", dataset=dataset, steps=200,
                                     num_envs=4, append=append, progress=False))


def _steps(root: Path, dataset: str = DATASET) -> int:
    import minari

    with minari_root(root):
        return int(minari.load_dataset(dataset).total_steps)


@pytest.mark.parametrize("mode", MODES)
def test_dataset_write_fails_clearly_and_keeps_the_dataset(disk, mode):
    root = disk.path / "minari"
    _collect(root)
    disk.block(mode, leave=64 * 1024)
    for append, dataset in ((True, DATASET), (False, "vwm/cartpole/other-v0")):
        with pytest.raises(SaveError, match=CAUSES) as info:
            _collect(root, append, dataset)
        assert str(root) in str(info.value), info.value
        print(info.value)
    disk.restore()
    assert _steps(root) == 200  # the dataset appended to is as it was
    assert not (root / "vwm/cartpole/other-v0").exists()
    assert sorted(p.name for p in root.iterdir()) == [".vwm-locks", "vwm"]  # no temporary left
    assert not list((root / ".vwm-locks").iterdir())  # no lock left
    assert _collect(root, append=True).total_episodes > 0 and _steps(root) == 400


@pytest.mark.parametrize("mode", MODES)
def test_result_json_write_fails_clearly_and_keeps_the_previous_file(disk, mode):
    path = disk.path / "results" / "run.json"
    write_json_atomic(path, {"return": 1.0})
    disk.block(mode, leave=0)
    with pytest.raises(SaveError, match=CAUSES) as info:
        write_json_atomic(path, {"return": 2.0, "curve": list(range(1000))})
    assert str(path) in str(info.value)
    disk.restore()
    assert json.loads(path.read_text()) == {"return": 1.0}
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]


@pytest.mark.parametrize("mode", MODES)
def test_train_model_cli_says_one_line_and_keeps_the_checkpoint(disk, mode, tmp_path):
    from tests.conftest import train_tiny

    root = tmp_path / "minari"
    _collect(root)
    out = disk.path / "run"
    with minari_root(root):
        train_tiny(DATASET, out, steps=2)
    disk.block(mode, leave=256 * 1024)  # room for the lock and config.json, not for the weights
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MINARI_DATASETS_PATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.cli", "train-model", "--dataset", DATASET, "--out", str(out),
         "--preset", "tiny", "--steps", "4", "--batch-size", "4", "--seq-len", "8", "--holdout-episodes",
         "2", "--num-contexts", "16", "--eval-every", "0", "--no-tensorboard", "--no-progress", "--resume"],
        capture_output=True, text=True, env=env, timeout=300)
    disk.restore()
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vwm train-model: error: cannot write " + str(out)), lines
    assert "Traceback" not in done.stderr
    assert load_checkpoint(out).step == 2


def test_collect_cli_into_a_read_only_folder_says_one_line(disk):
    disk.block("read-only")
    root = disk.path / "minari"  # not there yet: Minari's own makedirs fails first
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MINARI_DATASETS_PATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.cli", "collect", "--task", "vwm/CartPolePixels-v0", "--dataset",
         DATASET, "--steps", "10", "--no-progress"], capture_output=True, text=True, env=env, timeout=300)
    disk.restore()
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"vwm collect: error: cannot write {root}"), lines[0]
    assert not root.exists()


@pytest.mark.parametrize("mode", MODES)
def test_sb3_zip_save_fails_clearly_and_keeps_the_previous_zip(disk, mode):
    import zipfile

    import gymnasium as gym
    from stable_baselines3 import PPO

    from agents.sb3 import save_sb3_zip

    agent = PPO("MlpPolicy", gym.make("CartPole-v1"), n_steps=8, batch_size=8, device="cpu", seed=0)
    path = save_sb3_zip(agent, disk.path / "agent" / "ppo.zip")
    before = path.read_bytes()
    with torch.no_grad():
        for parameter in agent.policy.parameters():
            parameter.add_(1.0)
    disk.block(mode, leave=0)
    with pytest.raises(SaveError, match=CAUSES) as info:
        save_sb3_zip(agent, path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    disk.restore()
    assert path.read_bytes() == before  # the previous zip, whole
    assert [p.name for p in path.parent.iterdir()] == ["ppo.zip"]  # no temporary left
    save_sb3_zip(agent, path)  # room again: it saves, and the new zip is another one
    assert path.read_bytes() != before and zipfile.ZipFile(path).testzip() is None


@pytest.mark.parametrize("mode", MODES)
def test_dreamer_agent_save_fails_clearly_and_keeps_the_previous_agent(disk, mode):
    """A Dreamer agent (and the online loop's state) is a folder swapped in whole."""
    from agents.dreamer import DreamerAgent

    torch.manual_seed(0)
    agent = DreamerAgent(tiny_family_model("rssm").spec)
    path = agent.save(disk.path / "agent")
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    with torch.no_grad():
        for parameter in agent.parameters():
            parameter.add_(1.0)
    disk.block(mode, leave=0)
    with pytest.raises(SaveError, match=CAUSES) as info:
        agent.save(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    disk.restore()
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert [p.name for p in disk.path.iterdir() if p.name != "filler"] == ["agent"]  # no temporary
    agent.save(path)
    assert (path / "agent.safetensors").read_bytes() != before["agent.safetensors"]
