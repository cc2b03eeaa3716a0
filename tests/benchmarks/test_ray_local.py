"""`vwm bench SUITE --ray` without an address starts a local Ray of its own and stops it.

Run in a child process (`tests.faults.child`, which registers the tiny ``faults-random``
suite) so that no Ray of the test process is there to be joined instead.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.faults.harness import child_env, kill_at
from tests.faults.test_kill_bench import bench_args


def raylets() -> set[int]:
    """Pids of the Ray node managers running on this machine."""
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"raylet" in (proc / "cmdline").read_bytes().split(b"\0")[0]:
                found.add(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_vwm_bench_ray_starts_and_stops_its_own_local_ray(tmp_path):
    pytest.importorskip("ray")
    before = raylets()
    env = child_env(tmp_path / "minari")
    env.pop("RAY_ADDRESS", None)  # no cluster to join: the command starts its own
    args = [*bench_args(tmp_path, "faults-random"), "--ray"]
    done = kill_at(args, tmp_path, env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "[2/2]" in done.stdout and "FAILED" not in done.stdout, done.stdout
    written = sorted((tmp_path / "results").glob("*.json"))
    assert sorted(json.loads(p.read_text())["seed"] for p in written) == [0, 1]
    deadline = time.monotonic() + 30
    while raylets() - before and time.monotonic() < deadline:  # the command stopped its Ray
        time.sleep(0.5)
    assert not raylets() - before
    again = kill_at(args, tmp_path, env, timeout=600)  # finished runs are skipped
    assert again.returncode == 0 and again.stdout.count("done already, skipped") == 2, again.stdout
