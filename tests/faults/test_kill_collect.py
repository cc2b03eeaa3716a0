"""`vwm collect` killed with SIGKILL leaves its dataset id absent or complete and loadable,
and running it again completes it; an append killed mid-commit is rolled back, not lost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.faults.harness import Kill, child_env, describe, kill_at, kill_points, kill_then_finish
from video_envs.collect import CollectConfig, collect, minari_root
from world_models.locks import dataset_tmp_root

DATASET = "vwm/cartpole/kill-v0"
STEPS = 300


def collect_args(append: bool = False) -> list[str]:
    return ["collect", "--task", "vwm/CartPolePixels-v0", "--dataset", DATASET, "--steps", str(STEPS),
            "--num-envs", "4", "--no-progress", *(["--append"] if append else [])]


def contents(root: Path) -> dict[str, np.ndarray] | None:
    """The dataset's frames, actions and episode lengths (None when it is absent)."""
    import minari

    with minari_root(root):
        if not (root / DATASET / "data").is_dir():
            return None
        dataset = minari.load_dataset(DATASET)
        episodes = list(dataset.iterate_episodes())
    return {"frames": np.concatenate([e.observations for e in episodes]),
            "actions": np.concatenate([e.actions for e in episodes]),
            "lengths": np.asarray([len(e.actions) for e in episodes])}


def assert_same(a: dict[str, np.ndarray] | None, b: dict[str, np.ndarray] | None) -> None:
    assert a is not None and b is not None
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, np.ndarray]:
    """The dataset an uninterrupted `vwm collect` writes (collected in this process)."""
    root = tmp_path_factory.mktemp("reference_minari")
    with minari_root(root):
        collect(CollectConfig(task="vwm/CartPolePixels-v0", dataset=DATASET, steps=STEPS, num_envs=4,
                              progress=False))
    return contents(root)


def absent_or_complete(root: Path, reference: dict[str, np.ndarray], kill: Kill) -> bool:
    """Check the dataset after a kill; True when it is complete."""
    found = contents(root)
    assert found is None or int(found["lengths"].sum()) == STEPS, (kill.point, kill.landed)
    if found is not None:
        assert_same(reference, found)
    return found is not None


def test_kill_while_writing_leaves_no_dataset_and_a_rerun_completes_it(reference, tmp_path):
    env = child_env(tmp_path / "minari")
    kill = kill_at(collect_args(), tmp_path, env, event="hdf5#1")  # episodes written, not committed
    assert kill.landed.startswith("hdf5"), kill.landed  # inside the HDF5 write (or its close)
    assert contents(tmp_path / "minari") is None
    assert dataset_tmp_root(tmp_path / "minari", DATASET).is_dir()  # the killed run's leftovers
    done = kill_at(collect_args(), tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert_same(reference, contents(tmp_path / "minari"))
    assert not dataset_tmp_root(tmp_path / "minari", DATASET).exists()  # cleaned by the rerun


def test_append_killed_between_the_renames_of_its_commit_is_rolled_back(reference, tmp_path):
    root = tmp_path / "minari"
    env = child_env(root)
    assert kill_at(collect_args(), tmp_path, env).returncode == 0
    kill = kill_at(collect_args(append=True), tmp_path, env, event="-> previous#1")
    assert kill.landed.startswith("rename kill-v0 -> previous"), kill.landed
    assert contents(root) is None  # parked in the temporary folder: absent, not half-written
    with minari_root(root):  # a reader puts it back (so does the next collect)
        from world_models.storage import read_minari

        assert int(read_minari(DATASET, cache=False)["offsets"][-1]) > 0
    assert_same(reference, contents(root))
    done = kill_at(collect_args(append=True), tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert int(contents(root)["lengths"].sum()) == 2 * STEPS


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_kills_at_random_points_leave_the_dataset_absent_or_complete(reference, tmp_path, seed):
    uninterrupted = kill_at(collect_args(), tmp_path, child_env(tmp_path / "listing"))
    complete = {}

    def check(folder: Path, kill: Kill) -> None:
        complete[folder] = absent_or_complete(folder / "minari", reference, kill)

    trials = kill_then_finish(lambda folder, rerun: collect_args(), tmp_path, None,
                              kill_points(seed, uninterrupted), check)
    print(describe([kill for _, kill, _ in trials]))
    for folder, kill, rerun in trials:
        if complete[folder]:  # the kill came after the commit: the rerun refuses to overwrite
            assert rerun.returncode == 1 and "already exists" in rerun.stderr, rerun.stderr
        else:
            assert rerun.returncode == 0, (kill.point, rerun.stderr)
        assert_same(reference, contents(folder / "minari"))
