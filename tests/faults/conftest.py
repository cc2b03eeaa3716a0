"""Fixtures of the fault tests: a folder whose file system can be filled up or made read-only.

As root the folder is a small tmpfs of its own: filled with a filler file it is a real full
disk, remounted read-only a real read-only file system. Elsewhere, or where mounting is not
allowed, a full disk is a file-size limit (``RLIMIT_FSIZE``: writing past it fails with
EFBIG, in this process and in the children it starts) and a read-only folder is a ``chmod``
(skipped where it does not stop writes: as root, unless CAP_DAC_OVERRIDE is dropped). Set
``VWM_TEST_NO_TMPFS=1`` to try those fallbacks as root.
"""

from __future__ import annotations

import os
import resource
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

CAUSES = r"No space left on device|File too large|Read-only file system|Permission denied"
"""What a failed write may name as its cause, by way of simulating it."""


def _mount_tmpfs(folder: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None or os.environ.get("VWM_TEST_NO_TMPFS"):
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True)
    return done.returncode == 0


def _chmod_stops_writes(folder: Path) -> bool:
    """Whether a folder without write permission refuses new files here (not as plain root)."""
    probe = folder / "probe"
    probe.mkdir()
    probe.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        (probe / "x").touch()
    except PermissionError:
        return True
    finally:
        probe.chmod(stat.S_IRWXU)
        shutil.rmtree(probe)
    return False


class Disk:
    """A folder (`path`) to fill up (`fill`) or make read-only (`read_only`); `restore` undoes."""

    def __init__(self, path: Path, tmpfs: bool) -> None:
        self.path, self.tmpfs = path, tmpfs
        self._limit: tuple[int, int] | None = None
        self._modes: dict[Path, int] = {}

    def fill(self, leave: int = 0) -> None:
        """Leave only about `leave` bytes writable (a filler file, or a file-size limit)."""
        if self.tmpfs:
            stats = os.statvfs(self.path)
            free = stats.f_bavail * stats.f_frsize - leave
            with open(self.path / "filler", "wb") as file:
                while free > 0:
                    chunk = min(free, 1 << 20)
                    file.write(b"\0" * chunk)
                    free -= chunk
        else:
            self._limit = resource.getrlimit(resource.RLIMIT_FSIZE)
            resource.setrlimit(resource.RLIMIT_FSIZE, (max(leave, 1), self._limit[1]))

    def read_only(self) -> None:
        """Make the folder read-only (remount, or chmod every folder in it)."""
        if self.tmpfs:
            subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)
        elif not _chmod_stops_writes(self.path.parent):
            pytest.skip("chmod does not stop writes here (root) and tmpfs cannot be mounted")
        else:
            for folder in [self.path, *(p for p in self.path.rglob("*") if p.is_dir())]:
                self._modes[folder] = folder.stat().st_mode
                folder.chmod(stat.S_IRUSR | stat.S_IXUSR)

    def block(self, mode: str, leave: int = 0) -> None:
        """`fill` for mode ``full``, `read_only` for ``read-only``."""
        self.fill(leave) if mode == "full" else self.read_only()

    def restore(self) -> None:
        """Writable and with free space again."""
        if self._limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, self._limit)
            self._limit = None
        for folder, mode in self._modes.items():
            folder.chmod(mode)
        self._modes.clear()
        if self.tmpfs:
            subprocess.run(["mount", "-o", "remount,rw", str(self.path)], check=True)
            (self.path / "filler").unlink(missing_ok=True)


@pytest.fixture
def disk(tmp_path) -> Iterator[Disk]:
    """A 32 MB file system of its own (as root), else a plain folder (see the module doc)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    found = Disk(folder, _mount_tmpfs(folder, "32m"))
    try:
        yield found
    finally:
        found.restore()
        if found.tmpfs:
            subprocess.run(["umount", "-l", str(folder)], check=False)
