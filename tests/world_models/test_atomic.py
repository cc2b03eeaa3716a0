"""Atomic writes: a failure leaves the previous version; a kill mid-swap is recovered."""

from __future__ import annotations

import json

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
