"""`vwm train-agent --online` killed with SIGKILL (while acting or learning, inside the
loop-state commit, between the two renames of its swap) resumes to exactly the result of an
uninterrupted run: progress, learning curve, every weight and optimiser moment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agents.online import agent_dir, model_dir, state_dir
from benchmarks.cli import main as vwm
from tests.faults.harness import Kill, child_env, describe, kill_at, kill_points, kill_then_finish


def online_args(out: Path, iterations: int = 3) -> list[str]:
    """A tiny online run: iterations of 100 real steps (the same command resumes it)."""
    return ["train-agent", "--online", "--task", "vwm/CartPolePixels-v0", "--out", str(out),
            "--real-steps", str(100 * iterations), "--preset", "tiny", "--prefill", "100",
            "--real-steps-per-iter", "100", "--model-updates", "2", "--agent-updates", "2",
            "--model-batch", "4", "--model-seq", "8", "--eval-every", "0", "--eval-episodes", "2",
            "--real-envs", "4", "--hidden", "16", "--layers", "1", "--dreamer-batch", "8",
            "--horizon", "3", "--threads", "1", "--no-progress", "--no-tensorboard"]


def progress(out: Path) -> dict:
    """The loop's progress record (from ``state.old`` after a kill mid-swap, as resuming does)."""
    folder = state_dir(out) if state_dir(out).exists() else out / "state.old"
    record = json.loads((folder / "online.json").read_text())
    return {k: record[k] for k in ("real_steps", "iteration", "imagined_steps", "curve",
                                   "episode_returns", "metrics")}


def assert_same_run(a: Path, b: Path) -> None:
    assert progress(a) == progress(b)
    tensors = []
    for out in (a, b):
        found = {}
        for folder in (agent_dir(out), model_dir(out), state_dir(out)):
            for file in sorted(folder.glob("*.safetensors")):
                found.update({f"{folder.name}/{file.name}/{k}": v for k, v in load_file(str(file)).items()})
        tensors.append(found)
    assert tensors[0].keys() == tensors[1].keys()
    for key in tensors[0]:
        assert torch.equal(tensors[0][key], tensors[1][key]), key


def iteration_kept(out: Path, kill: Kill) -> None:
    """After a kill: the loop state is the last one the killed run committed, and loads."""
    committed = kill.count("-> state\t")  # the swap's second rename commits an iteration
    if committed == 0:
        assert not state_dir(out).exists() and not (out / "state.old").exists()
        return
    assert progress(out)["iteration"] == committed, (kill.point, kill.landed)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run of `online_args(..., iterations)` (in this process), by iterations."""
    runs: dict[int, Path] = {}

    def run(iterations: int) -> Path:
        if iterations not in runs:
            out = tmp_path_factory.mktemp("online_reference") / "run"
            assert vwm(online_args(out, iterations)) == 0
            runs[iterations] = out
        return runs[iterations]

    return run


def test_kill_inside_the_state_commit_resumes_exactly(reference, tmp_path):
    env, out = child_env(tmp_path / "minari"), tmp_path / "run"
    # the 2nd (last) commit: the previous state moved aside, the new one not yet in place
    kill = kill_at(online_args(out, 2), tmp_path, env, event="rename state -> state.old#1")
    assert kill.landed.startswith("rename state -> state.old"), kill.landed
    assert not state_dir(out).exists() and (out / "state.old").is_dir()
    done = kill_at(online_args(out, 2), tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert_same_run(reference(2), out)
    assert sorted(p.name for p in out.iterdir()) == ["replay", "state"]  # no temporaries, no lock


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_kills_at_random_points_resume_exactly(reference, tmp_path, seed):
    uninterrupted = kill_at(online_args(tmp_path / "listing"), tmp_path, child_env(tmp_path / "m"))
    trials = kill_then_finish(lambda folder, resume: online_args(folder / "run"), tmp_path, None,
                              kill_points(seed, uninterrupted, 4),
                              check=lambda folder, kill: iteration_kept(folder / "run", kill))
    print(describe([kill for _, kill, _ in trials]))
    for folder, kill, end in trials:
        assert end.returncode == 0, (kill.point, end.stderr)
        assert_same_run(reference(3), folder / "run")
