"""Atomic file and folder writes: build under a temporary name, then rename into place.

A process killed while writing leaves either the previous version or the new one, never a
half-written file (design section 5). Files are replaced with one `os.replace`. Folders are
built in a hidden sibling and swapped in with two renames; a kill between the two leaves
``<name>.old`` next to the missing folder, which `recover_folder` puts back, and a kill
while writing leaves a hidden temporary (``.<name>.<8 hex>.tmp...``), which
`remove_temporaries` clears (readers skip hidden names).

A write that fails (full disk, read-only folder, no permission) raises `SaveError`, naming the
path and the cause, and leaves the previous version in place; the partial temporary is
removed, so the space it took is given back.
"""

from __future__ import annotations

import contextlib
import errno as errno_codes
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class SaveError(OSError):
    """Writing `path` failed (full disk, read-only folder, ...); nothing was replaced there.

    `errno` is the operating system's error code when one is known (``errno.ENOSPC``, ...).
    """

    def __init__(self, path: str | os.PathLike, cause: str, code: int | None = None) -> None:
        super().__init__(code, cause)
        self.path = Path(path)
        self.cause = cause

    def __str__(self) -> str:
        return f"cannot write {self.path}: {self.cause}; what was there before is left intact"


WRITE_FAILURES = frozenset({errno_codes.ENOSPC, errno_codes.EDQUOT, errno_codes.EROFS,
                            errno_codes.EACCES, errno_codes.EPERM, errno_codes.EFBIG, errno_codes.EIO})
"""OS error codes that mean "this cannot be written here" (full disk, quota, read-only, no
permission, file size limit, I/O error)."""


def _os_code(error: BaseException) -> int | None:
    """The OS error code of `error`: its ``errno``, or the one a library quotes in its message
    (safetensors: ``(os error 28)``, HDF5: ``errno = 28``, `shutil.copytree`: ``[Errno 28]``)."""
    code = getattr(error, "errno", None)
    if isinstance(code, int):
        return code
    found = re.search(r"os error (\d+)|errno = (\d+)|\[Errno (\d+)\]", str(error))
    return int(next(g for g in found.groups() if g)) if found else None


def save_error(path: str | os.PathLike, error: BaseException) -> SaveError | None:
    """A `SaveError` for `path` when `error` is a failed write (`WRITE_FAILURES`), with the
    plain OS cause rather than a library's multi-line report; None for any other error."""
    if isinstance(error, SaveError):
        return error
    code = _os_code(error)
    if code not in WRITE_FAILURES:
        return None
    cause = f"{os.strerror(code)} [{errno_codes.errorcode[code]}]"
    failed = getattr(error, "filename", None)
    if failed and Path(failed) != Path(path) and not Path(failed).name.startswith("."):
        cause += f" (at {failed})"
    return SaveError(path, cause, code)


@contextlib.contextmanager
def saving(path: str | os.PathLike) -> Iterator[None]:
    """Re-raise a failed write inside the block (`save_error`) as a `SaveError` naming `path`
    and the cause; other errors pass unchanged."""
    try:
        yield
    except Exception as error:
        converted = save_error(path, error)
        if converted is None or converted is error:
            raise
        raise converted from error


TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp(\.[^.]+)?$")
"""Names of the temporaries `atomic_file` and `atomic_folder` write before their rename."""


def remove_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporaries a killed writer left in `folder` (not recursive); returns them.

    Call it only while no other process writes there (holding the folder's writer lock,
    `world_models.locks`): a live writer's temporary looks the same.
    """
    folder = Path(folder)
    found = [p for p in folder.iterdir() if TEMPORARY.match(p.name)] if folder.is_dir() else []
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found


def _tmp_sibling(path: Path, kind: str) -> Path:
    """A hidden, unique sibling of `path` that keeps its suffix (numpy appends one otherwise)."""
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.{kind}{path.suffix}")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    with saving(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path, "tmp")
    try:
        with saving(path):
            yield tmp
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):  # (a read-only file system refuses even this)
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

    On error the partial folder is removed and `path` is left as it was; a failed write
    raises `SaveError`.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with saving(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    try:
        with saving(path):
            yield tmp
            swap_in(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
