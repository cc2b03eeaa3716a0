"""`vwm train-model` killed with SIGKILL (while training, inside a checkpoint's weights write,
between the two renames of a checkpoint swap) keeps its last checkpoint, and ``--resume`` ends with
exactly the weights, optimiser state and metrics of an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from benchmarks.cli import main as vwm
from tests.faults.harness import Kill, child_env, describe, kill_at, kill_points, kill_then_finish
from video_envs.collect import CollectConfig, collect, minari_root
from world_models.checkpoint import resolve_checkpoint_dir

DATASET = "vwm/cartpole/faults-v0"
EVERY, STEPS = 3, 12


def train_args(out: Path, resume: bool = False) -> list[str]:
    return ["train-model", "--dataset", DATASET, "--out", str(out), "--preset", "tiny",
            "--steps", str(STEPS), "--batch-size", "4", "--seq-len", "8", "--holdout-episodes", "2",
            "--num-contexts", "16", "--eval-every", "0", "--checkpoint-every", str(EVERY),
            "--no-tensorboard", "--no-progress", *(["--resume"] if resume else [])]


def run_state(out: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Every tensor of the run's checkpoint and its step and metrics."""
    folder = resolve_checkpoint_dir(out)
    tensors = {f"{f.name}/{k}": v for f in sorted(folder.glob("*.safetensors"))
               for k, v in load_file(str(f)).items()}
    config = json.loads((folder / "config.json").read_text())
    return tensors, {"step": config["step"], "eval": config.get("eval")}


def assert_same_run(a: Path, b: Path) -> None:
    (ta, ca), (tb, cb) = run_state(a), run_state(b)
    assert ca == cb
    assert ta.keys() == tb.keys() and any(k.startswith("trainer.safetensors/") for k in ta)
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key


def checkpoint_step(out: Path) -> int:
    """The step of the run's checkpoint (0 without one); it must load."""
    try:
        return run_state(out)[1]["step"]
    except Exception as error:  # noqa: BLE001 - only a missing checkpoint is allowed
        assert not (out / "checkpoint").exists() and not (out / "checkpoint.old").exists(), error
        return 0


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    """A Minari root with a small dataset, and the uninterrupted run (in this process)."""
    root = tmp_path_factory.mktemp("faults_minari")
    with minari_root(root):
        collect(CollectConfig(task="vwm/CartPolePixels-v0", dataset=DATASET, steps=300,
                              num_envs=4, progress=False))
        reference = tmp_path_factory.mktemp("reference") / "run"
        assert vwm(train_args(reference)) == 0
    return root, reference


def step_kept(out: Path, kill: Kill) -> None:
    """After a kill: the checkpoint holds the last step the killed run committed."""
    committed = kill.count("rename checkpoint.tmp -> checkpoint")  # a checkpoint's commit point
    assert checkpoint_step(out) == EVERY * committed, (kill.point, kill.landed)


def test_kill_between_the_renames_of_a_checkpoint_swap_resumes_exactly(setup, tmp_path):
    root, reference = setup
    env, out = child_env(root), tmp_path / "run"
    # the 2nd checkpoint's swap: checkpoint -> checkpoint.old done, checkpoint.tmp not yet in
    kill = kill_at(train_args(out), tmp_path, env, event="-> checkpoint.old#1")
    assert kill.landed.startswith("rename checkpoint -> checkpoint.old"), kill.landed
    assert resolve_checkpoint_dir(out).name == "checkpoint.old" and checkpoint_step(out) == EVERY
    done = kill_at(train_args(out, resume=True), tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert_same_run(reference, out)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint"]  # no .old, .tmp or lock left


def test_kill_inside_a_checkpoint_write_resumes_exactly(setup, tmp_path):
    root, reference = setup
    env, out = child_env(root), tmp_path / "run"
    # the 2nd checkpoint's weights just written into checkpoint.tmp, its other files not yet
    kill = kill_at(train_args(out), tmp_path, env, event="checkpoint.tmp/model.safetensors#2")
    assert kill.landed.startswith("safetensors checkpoint.tmp/model.safetensors"), kill.landed
    assert "save_checkpoint" in kill.landed, kill.landed
    assert (out / "checkpoint.tmp").is_dir() and checkpoint_step(out) == EVERY  # the 1st is intact
    done = kill_at(train_args(out, resume=True), tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert_same_run(reference, out)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_kills_at_random_points_resume_exactly(setup, tmp_path, seed):
    root, reference = setup
    env = child_env(root)
    uninterrupted = kill_at(train_args(tmp_path / "listing"), tmp_path, env)
    trials = kill_then_finish(lambda folder, resume: train_args(folder / "run", resume), tmp_path, env,
                              kill_points(seed, uninterrupted),
                              check=lambda folder, kill: step_kept(folder / "run", kill))
    print(describe([kill for _, kill, _ in trials]))
    for folder, kill, end in trials:
        assert end.returncode == 0, (kill.point, end.stderr)
        assert_same_run(reference, folder / "run")
