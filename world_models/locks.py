"""One writer per run folder or dataset: an exclusive lock file, released on exit or death.

`writer_lock(folder)` holds ``<folder>/.vwm.lock`` for the block; a second process asking for
the same lock gets a `LockedError` naming the folder and the holder (pid, command, start time)
instead of interleaving its writes with the first one's. `vwm train-model`, `train-reward`,
`train-agent` and `bench` lock their output folders; `vwm collect` locks the dataset id
(`dataset_lock`), whose temporary folder and crash recovery are defined here too.

The lock is a POSIX record lock (``fcntl.lockf``) on the file, which the kernel drops when the
holder exits or is killed (even with ``kill -9``): a lock file left behind by a dead process is
stale and is simply taken over. Record locks belong to the process, so worker processes forked
by the holder neither hold nor keep it. Where ``fcntl`` locks are not available (Windows, some
network file systems) the file is created exclusively instead and holds the holder's pid; it
is stale when no process has that pid any more. A process never takes the same lock twice.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from world_models.atomic import saving

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".vwm.lock"
"""Name of the lock file inside a locked folder."""

_held: set[str] = set()  # lock files this process holds
_held_guard = threading.Lock()


class LockedError(RuntimeError):
    """Another process (or this one, elsewhere) is writing the folder or dataset asked for."""

    def __init__(self, what: str, holder: dict[str, Any], hint: str = "") -> None:
        self.what = what
        self.holder = holder
        pid = holder.get("pid", "unknown")
        since = holder.get("since")
        command = holder.get("command")
        details = "".join((f", since {since}" if since else "", f": {command}" if command else ""))
        host = holder.get("host")
        where = f" on {host}" if host and host != socket.gethostname() else ""
        who = "this very process" if pid == os.getpid() and not where else "another vwm process"
        super().__init__(f"{what} is in use by {who} (pid {pid}{where}{details}); "
                         f"wait for it to finish or stop it{hint}")


def _holder_info() -> dict[str, Any]:
    command = " ".join([Path(sys.argv[0]).name if sys.argv else "python", *sys.argv[1:]])
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command[:300],
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def read_holder(lock_file: str | os.PathLike) -> dict[str, Any]:
    """What the lock file says about its (last) holder; {} when it says nothing readable."""
    try:
        holder = json.loads(Path(lock_file).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _lock_fd(lock_file: Path) -> int | None:
    """An open descriptor holding an fcntl lock on `lock_file`; None when another process
    holds it; raises OSError(ENOLCK, ...) where record locks are not supported."""
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EACCES, errno.EAGAIN):
                return None
            raise
        try:  # the holder we waited on may have removed the file: lock the one in place
            if os.fstat(fd).st_ino == os.stat(lock_file).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _create_fd(lock_file: Path) -> int | None:
    """Fallback without record locks: create the file exclusively; a file naming a dead pid
    (on this host) is stale and replaced. None when a live process holds it."""
    for _ in range(3):
        try:
            return os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = read_holder(lock_file)
            pid, host = holder.get("pid"), holder.get("host", socket.gethostname())
            if isinstance(pid, int) and host == socket.gethostname() and not pid_alive(pid):
                lock_file.unlink(missing_ok=True)  # stale: its holder died
                continue
            return None
    return None


def _open_locked(lock_file: Path) -> int | None:
    """`_lock_fd`, or `_create_fd` where record locks are not supported; the folder is made
    (again, when a failed run removed it meanwhile)."""
    for _ in range(5):
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            try:
                return _lock_fd(lock_file) if fcntl is not None else _create_fd(lock_file)
            except OSError as error:
                if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                return _create_fd(lock_file)
        except FileNotFoundError:
            continue
    raise FileNotFoundError(f"{lock_file.parent} keeps disappearing")


@contextlib.contextmanager
def writer_lock(folder: str | os.PathLike, what: str | None = None, hint: str = "",
                lock_file: str | os.PathLike | None = None) -> Iterator[Path]:
    """Hold the writer lock of `folder` for the block; yields the folder.

    `lock_file` defaults to ``<folder>/.vwm.lock``; `what` names the locked thing in the error
    (default: the folder) and `hint` is appended to it (e.g. "; or pick another --out").
    Raises `LockedError` when another process holds the lock (or this one already does), and
    `world_models.atomic.SaveError` when the lock file cannot be written (read-only folder,
    full disk): before any work is done. The lock file's folder is created if missing (so the
    default one creates `folder`) and removed again when the block fails and leaves it empty
    (a run refused for bad options leaves nothing behind).
    """
    folder = Path(folder)
    lock_file = Path(lock_file) if lock_file is not None else folder / LOCK_FILE
    missing = [d for d in (lock_file.parent, *lock_file.parent.parents) if not d.exists()]
    created = bool(missing)  # the folders the lock file makes, deepest first
    what = what or f"folder {folder}"
    key = os.path.realpath(lock_file)
    with _held_guard:
        if key in _held:
            raise LockedError(what, _holder_info(), hint)
        _held.add(key)
    fd = None
    try:
        with saving(lock_file):
            fd = _open_locked(lock_file)
            if fd is None:
                raise LockedError(what, read_holder(lock_file), hint)
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(_holder_info()).encode())
        yield folder
        created = False  # the block went through: keep what it made, even empty
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                lock_file.unlink()  # before unlocking: a waiter then locks a file in place
            os.close(fd)
            if created:
                with contextlib.suppress(OSError):
                    for made in missing:
                        made.rmdir()  # only when empty
        with _held_guard:
            _held.discard(key)


def run_folder_lock(out: str | os.PathLike) -> contextlib.AbstractContextManager[Path]:
    """The writer lock of run folder `out` (`writer_lock`), its error pointing at ``--out``."""
    return writer_lock(out, f"run folder {out}", "; or pick another --out")


def swapped_folder_lock(out: str | os.PathLike) -> contextlib.AbstractContextManager[Path]:
    """The writer lock of run folder `out`, held in the hidden sibling file
    ``.<name>.vwm.lock``: for folders saved by swapping a whole new folder in (a Dreamer
    agent), which would carry a lock file kept inside them away."""
    out = Path(out)
    return writer_lock(out, f"run folder {out}", "; or pick another --out",
                       lock_file=out.parent / f".{out.name}{LOCK_FILE}")


# ---------------------------------------------------------------------------- Minari datasets

DATASET_LOCKS = ".vwm-locks"
"""Hidden folder of a Minari root holding one writer lock file per dataset id."""

DATASET_TMP_PREFIX = ".vwm-tmp-"
"""Prefix of the hidden folders of a Minari root where datasets are written before their
commit (Minari's listing skips hidden folders)."""


def _id_key(dataset_id: str) -> str:
    return dataset_id.replace("/", "--")


def dataset_lock(root: str | os.PathLike, dataset_id: str) -> contextlib.AbstractContextManager[Path]:
    """The writer lock of Minari dataset `dataset_id` under `root` (`writer_lock`; the lock
    file is ``<root>/.vwm-locks/<id>.lock``, the dataset folder is not created)."""
    root = Path(root)
    return writer_lock(root / dataset_id, f"dataset {dataset_id!r} ({root / dataset_id})",
                       "; or choose another dataset id",
                       lock_file=root / DATASET_LOCKS / f"{_id_key(dataset_id)}.lock")


def dataset_tmp_root(root: str | os.PathLike, dataset_id: str) -> Path:
    """The hidden folder of Minari root `root` where `dataset_id` is written before its commit;
    only the holder of `dataset_lock` uses it, so one found by the next holder is a killed
    writer's."""
    return Path(root) / f"{DATASET_TMP_PREFIX}{_id_key(dataset_id)}"


def recover_dataset(root: str | os.PathLike, dataset_id: str) -> None:
    """Undo what a killed writer of `dataset_id` left (call it holding `dataset_lock`): put
    back the dataset an append was replacing when killed between the two renames of its
    commit (``<tmp root>/previous``), then remove the temporary folder."""
    folder = dataset_tmp_root(root, dataset_id)
    previous, final = folder / "previous", Path(root) / dataset_id
    if not final.exists() and (previous / "data").is_dir():
        final.parent.mkdir(parents=True, exist_ok=True)
        previous.rename(final)
    shutil.rmtree(folder, ignore_errors=True)
