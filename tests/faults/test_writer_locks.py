"""Two real `vwm` processes writing the same run folder or dataset id: the second is refused
with a one-line message naming the folder and the holder's pid, and writes nothing; once the
holder is gone (even killed with SIGKILL) the folder can be written again."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.faults.harness import child_env, kill_at, start_paused
from tests.faults.test_kill_bench import bench_args
from tests.faults.test_kill_online import online_args
from video_envs.collect import CollectConfig, collect, minari_root

DATASET = "vwm/cartpole/locked-v0"


def collect_args(dataset: str = DATASET) -> list[str]:
    return ["collect", "--task", "vwm/CartPolePixels-v0", "--dataset", dataset, "--steps", "40",
            "--num-envs", "2", "--no-progress"]


def train_args(out: Path, dataset: str = DATASET) -> list[str]:
    return ["train-model", "--dataset", dataset, "--out", str(out), "--preset", "tiny", "--steps", "2",
            "--batch-size", "2", "--seq-len", "4", "--holdout-episodes", "1", "--num-contexts", "4",
            "--eval-every", "0", "--eval-horizon", "2", "--no-tensorboard", "--no-progress", "--resume"]


COMMANDS = {
    # command: (its arguments in folder F, what the refusal names)
    "collect": (lambda folder: collect_args(), f"dataset {DATASET!r} ({{F}}/minari/{DATASET})"),
    "train-model": (lambda folder: train_args(folder / "run"), "run folder {F}/run"),
    "train-agent": (lambda folder: online_args(folder / "run", 1), "run folder {F}/run"),
    "bench": (lambda folder: bench_args(folder, "faults-random"), "results folder {F}/results"),
    # the Ray driver holds the same locks (refused before Ray is imported or started)
    "bench --ray": (lambda folder: [*bench_args(folder, "faults-random"), "--ray"],
                    "results folder {F}/results"),
}


@pytest.mark.parametrize("command", [pytest.param(c, marks=pytest.mark.slow) if c in ("train-agent", "bench")
                                     else c for c in COMMANDS])  # the same lock as train-model's
def test_a_second_writer_is_refused_naming_the_holder(command, tmp_path):
    make_args, names = COMMANDS[command]
    env = child_env(tmp_path / "minari")
    if command == "train-model":  # it needs a dataset
        with minari_root(tmp_path / "minari"):
            collect(CollectConfig(task="vwm/CartPolePixels-v0", dataset=DATASET, steps=40, num_envs=2,
                                  progress=False))
    holder = start_paused(make_args(tmp_path), tmp_path, env, "locked #1")
    try:
        second = kill_at(make_args(tmp_path), tmp_path, env)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 1 and len(lines) == 1, second.stderr
    refusal = f"{names.format(F=tmp_path)} is in use by another vwm process (pid {holder.pid}"
    assert lines[0].startswith(f"vwm {command.split()[0]}: error: {refusal}"), lines[0]
    assert second.events == [], second.events  # refused before writing anything
    if command == "collect":  # the holder was killed: its lock is stale, the next run takes it
        again = kill_at(make_args(tmp_path), tmp_path, env)
        assert again.returncode == 0, again.stderr


def test_other_dataset_ids_and_folders_are_not_blocked(tmp_path):
    env = child_env(tmp_path / "minari")
    holder = start_paused(collect_args(), tmp_path, env, "locked #1")
    try:
        other = kill_at(collect_args("vwm/cartpole/other-v0"), tmp_path, env)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert other.returncode == 0, other.stderr


@pytest.mark.parametrize("algo", ["dreamer", "ppo"])
def test_a_second_offline_agent_trainer_is_refused(algo, tmp_path):
    import torch

    from tests.conftest import tiny_family_model
    from world_models.checkpoint import ContextBank, save_checkpoint

    model = tiny_family_model("rssm", size=64)
    k = model.spec.context_len
    checkpoint = save_checkpoint(tmp_path / "ckpt", model, ContextBank(
        torch.zeros(2, k, 64, 64, 3, dtype=torch.uint8), torch.zeros(2, k, dtype=torch.int64)),
        {"task": "vwm/CartPolePixels-v0"})
    args = ["train-agent", "--checkpoint", str(checkpoint), "--algo", algo, "--steps", "8", "--out",
            str(tmp_path / "agent"), "--eval-episodes", "1", "--no-progress"]
    env = child_env(tmp_path / "minari")
    holder = start_paused(args, tmp_path, env, "locked #1")
    try:
        second = kill_at(args, tmp_path, env)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 1 and len(lines) == 1, second.stderr
    assert lines[0].startswith(f"vwm train-agent: error: run folder {tmp_path / 'agent'} is in use by "
                               f"another vwm process (pid {holder.pid}"), lines[0]
    assert second.events == [] and not (tmp_path / "agent").exists()  # refused before any write
