"""Atomic file and folder writes: build under a temporary name, then rename into place.

A process killed while writing leaves either the previous version or the new one, never a
half-written file (design section 5). Files are replaced with one `os.replace`. Folders are
built in a hidden sibling and swapped in with two renames; a kill between the two leaves
``<name>.old`` next to the missing folder, which `recover_folder` puts back.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _tmp_sibling(path: Path, kind: str) -> Path:
    """A hidden, unique sibling of `path` that keeps its suffix (numpy appends one otherwise)."""
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.{kind}{path.suffix}")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path, "tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns the path."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically; returns the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int | None = 2) -> Path:
    """Write `data` as JSON (with a final newline) to `path` atomically; returns the path."""
    return write_text_atomic(path, json.dumps(data, indent=indent) + "\n")


def old_folder(path: str | os.PathLike) -> Path:
    """Where `swap_in` parks the previous version of folder `path` between its two renames."""
    path = Path(path)
    return path.with_name(path.name + ".old")


def swap_in(tmp: str | os.PathLike, path: str | os.PathLike, old: str | os.PathLike | None = None) -> Path:
    """Replace folder `path` by the finished folder `tmp` with two renames; returns `path`.

    The previous version is moved to `old` (default ``<path>.old``) first and deleted last,
    so a kill between the renames leaves it for `recover_folder`.
    """
    tmp, path = Path(tmp), Path(path)
    old = Path(old) if old is not None else old_folder(path)
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def recover_folder(path: str | os.PathLike) -> Path | None:
    """`path` if it exists; else its ``.old`` version renamed back (a kill mid-swap); else None."""
    path = Path(path)
    if path.exists():
        return path
    old = old_folder(path)
    if old.is_dir():
        old.rename(path)
        return path
    return None


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty hidden sibling folder to fill; on success it is swapped in as `path`.

    On error the partial folder is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir()
    try:
        yield tmp
        swap_in(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
