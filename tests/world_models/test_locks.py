"""Writer locks: held by one process at a time, named in the refusal, stale once the holder
dies (even by SIGKILL, even with children of the holder still alive), with or without fcntl."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from world_models import locks
from world_models.locks import LOCK_FILE, LockedError, writer_lock

ROOT = Path(__file__).resolve().parents[2]


def hold(folder: Path, fallback: bool = False, fork: bool = False) -> subprocess.Popen:
    """A real process holding the writer lock of `folder` (without fcntl when `fallback`; with
    a forked child of its own when `fork`); returns once it holds it."""
    code = textwrap.dedent(f"""
        import os, sys, time
        from world_models import locks
        if {fallback}:
            locks.fcntl = None
        with locks.writer_lock({str(folder)!r}):
            forked = os.fork() if {fork} else -1
            if forked == 0:
                time.sleep(60)
                os._exit(0)
            print("held", forked, flush=True)
            time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = child.stdout.readline().split()
    assert line[0] == "held"
    child.forked = int(line[1])  # type: ignore[attr-defined]
    return child


def kill(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait()


@pytest.mark.parametrize("fallback", [False, True], ids=["fcntl", "pid-file"])
def test_second_process_is_refused_until_the_holder_dies(tmp_path, monkeypatch, fallback):
    if fallback:
        monkeypatch.setattr(locks, "fcntl", None)
    folder = tmp_path / "run"
    holder = hold(folder, fallback)
    try:
        refused = rf"folder {folder} is in use by another vwm process \(pid {holder.pid}, since .*\); wait"
        with pytest.raises(LockedError, match=refused), writer_lock(folder):
            pass
    finally:
        kill(holder)
    assert json.loads((folder / LOCK_FILE).read_text())["pid"] == holder.pid  # left by the kill
    with writer_lock(folder):  # stale: taken over
        assert json.loads((folder / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (folder / LOCK_FILE).exists()


def test_a_child_of_a_killed_holder_does_not_keep_the_lock(tmp_path):
    holder = hold(tmp_path, fork=True)
    kill(holder)  # its forked child lives on
    try:
        with writer_lock(tmp_path):
            pass
    finally:
        os.kill(holder.forked, signal.SIGKILL)


def test_one_process_cannot_take_a_lock_twice_and_leaves_no_trace(tmp_path):
    folder = tmp_path / "new"
    refused = r"run folder X is in use by this very process .*another --out"
    hint = "; or pick another --out"
    with pytest.raises(LockedError, match=refused), writer_lock(folder, "run folder X", hint), \
            writer_lock(folder, "run folder X", hint):
        pass
    assert not folder.exists()  # created for the lock, left empty by a failure: removed
    with writer_lock(folder):
        pass
    assert folder.is_dir() and not list(folder.iterdir())  # a run that went through keeps it
