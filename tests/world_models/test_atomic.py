"""Atomic writes: a failure leaves the previous version; a kill mid-swap is recovered."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from world_models.atomic import (
    atomic_file,
    atomic_folder,
    old_folder,
    recover_folder,
    write_json_atomic,
)


def test_files_are_replaced_whole_or_not_at_all(tmp_path):
    path = write_json_atomic(tmp_path / "a" / "x.json", {"v": 1})
    with pytest.raises(RuntimeError), atomic_file(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert json.loads(path.read_text()) == {"v": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.json"]
    with atomic_file(tmp_path / "c.npz") as tmp:
        np.savez(tmp, a=np.arange(3))  # numpy keeps the suffix of the temporary name
    assert np.load(tmp_path / "c.npz")["a"].tolist() == [0, 1, 2]


def test_folders_swap_in_and_recover(tmp_path):
    path = tmp_path / "state"
    with atomic_folder(path) as tmp:
        (tmp / "f").write_text("1")
    with pytest.raises(RuntimeError), atomic_folder(path) as tmp:
        (tmp / "f").write_text("2")
        raise RuntimeError
    assert (path / "f").read_text() == "1" and [p.name for p in tmp_path.iterdir()] == ["state"]
    path.rename(old_folder(path))  # a kill between the two renames of a swap
    assert recover_folder(path) == path and (path / "f").read_text() == "1"
    assert recover_folder(tmp_path / "none") is None


def test_renames_that_commit_writes_live_in_the_atomic_module_only():
    """One copy of the mechanism: no library module hand-rolls a temporary-then-rename write
    (`world_models.locks` only puts back a killed dataset append's previous folder)."""
    root = Path(__file__).resolve().parents[2]
    allowed = {Path("world_models/atomic.py"), Path("world_models/locks.py")}
    rename = re.compile(r"\bos\.(replace|rename)\(|\.rename\(|\bshutil\.move\(")
    found = []
    for package in ("agents", "benchmarks", "video_envs", "world_models"):
        for path in sorted((root / package).rglob("*.py")):
            if path.relative_to(root) in allowed:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if rename.search(line.split("#")[0]):
                    found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert not found, "rename outside world_models/atomic.py:\n" + "\n".join(found)
