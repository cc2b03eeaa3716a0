"""`vwm bench` killed with SIGKILL keeps the result JSONs of its finished runs (byte for byte;
a rerun skips them), never leaves a half-written one, and a rerun completes the rest with the
results of an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.cli import main as vwm
from benchmarks.suites import SUITES
from tests.faults.child import register_suite
from tests.faults.harness import Kill, child_env, describe, kill_at, kill_points, kill_then_finish
from video_envs.collect import minari_root

COMPARED = ("method", "final", "fidelity", "curve", "real_steps", "imagined_steps")


def bench_args(folder: Path, suite: str = "faults") -> list[str]:
    return ["bench", suite, "--results", str(folder / "results"), "--work", str(folder / "work"),
            "--threads", "1", "--no-progress"]


def results(folder: Path) -> dict[str, bytes]:
    """The result JSONs of a bench folder, by name; each must parse (never half-written)."""
    found = {p.name: p.read_bytes() for p in sorted((folder / "results").glob("*.json"))
             if not p.name.startswith(".")}  # hidden: a killed write's temporary
    for data in found.values():
        json.loads(data)
    return found


def summary(data: bytes) -> dict:
    record = json.loads(data)
    return {k: record.get(k) for k in COMPARED}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, dict]:
    """The results of an uninterrupted run of the ``faults`` suite (in this process)."""
    folder = tmp_path_factory.mktemp("bench_reference")
    saved = dict(SUITES)
    register_suite()
    try:
        with minari_root(folder / "minari"):
            assert vwm(bench_args(folder)) == 0
    finally:
        SUITES.clear()
        SUITES.update(saved)
    found = {name: summary(data) for name, data in results(folder).items()}
    assert len(found) == 2
    return found


def finished_kept(folder: Path, kill: Kill, reference: dict[str, dict], before: dict) -> None:
    """After a kill: every result JSON there is complete and the uninterrupted run's."""
    before[folder] = results(folder)
    for name, data in before[folder].items():
        assert summary(data) == reference[name], (kill.point, name)


def test_kill_while_writing_a_result_keeps_the_finished_one_and_reruns_the_other(tmp_path):
    env = child_env(tmp_path / "minari")
    args = bench_args(tmp_path, "faults-random")
    # seed 0 is finished; seed 1's JSON is written under its temporary name, not renamed yet
    kill = kill_at(args, tmp_path, env, event="write .faults-random__#2")
    assert kill.landed.startswith("write .faults-random__") and ".tmp.json" in kill.landed, kill.landed
    kept = results(tmp_path)
    assert [json.loads(d)["seed"] for d in kept.values()] == [0]
    done = kill_at(args, tmp_path, env)
    assert done.returncode == 0, done.stderr  # the report skips the killed run's temporary
    assert "seed=0 budget=300: done already, skipped" in done.stdout
    after = results(tmp_path)
    assert [json.loads(d)["seed"] for d in after.values()] == [0, 1]
    assert all(after[name] == data for name, data in kept.items())  # byte for byte
    assert not [p.name for p in (tmp_path / "results").iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_kill_inside_a_model_checkpoint_keeps_finished_runs(reference, tmp_path):
    env = child_env(tmp_path / "minari")
    # the random run is finished; the CEM run's shared model is being saved
    kill = kill_at(bench_args(tmp_path), tmp_path, env, event="trainer.safetensors#1")
    assert "save_checkpoint" in kill.landed, kill.landed
    kept = results(tmp_path)
    assert [summary(d)["method"] for d in kept.values()] == ["random"]
    done = kill_at(bench_args(tmp_path), tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "random seed=0 budget=300: done already, skipped" in done.stdout
    after = results(tmp_path)
    assert all(after[name] == data for name, data in kept.items())  # byte for byte
    assert {name: summary(data) for name, data in after.items()} == reference


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_kills_at_random_points_keep_finished_runs_and_complete_the_rest(reference, tmp_path, seed):
    uninterrupted = kill_at(bench_args(tmp_path / "listing"), tmp_path, child_env(tmp_path / "m"))
    before: dict[Path, dict] = {}
    trials = kill_then_finish(lambda folder, rerun: bench_args(folder), tmp_path, None,
                              kill_points(seed, uninterrupted, 4),
                              check=lambda folder, kill: finished_kept(folder, kill, reference, before))
    print(describe([kill for _, kill, _ in trials]))
    for folder, kill, end in trials:
        assert end.returncode == 0, (kill.point, end.stderr)
        after = results(folder)
        assert all(after[name] == data for name, data in before[folder].items()), kill.point
        assert {name: summary(data) for name, data in after.items()} == reference, kill.point
