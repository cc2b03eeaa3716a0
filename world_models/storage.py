"""Frames of large datasets, kept on disk: a raw uint8 frame file read on demand.

A 1M-frame 64x64 RGB dataset is 12 GB of frames, too much to hold in memory (design
section 4). `read_minari` therefore copies a Minari dataset's frames once, episode by
episode, into a flat raw file ``frames.u8`` in a hidden folder next to the dataset
(``<root>/<namespace>/.<name>.vwm-cache/``; hidden folders are skipped by Minari's
listing) together with the small per-step arrays (actions, rewards, terminations,
offsets). Later loads only check a fingerprint of the dataset's files and open the cache.

`FrameFile` serves (B, T) windows from that file with ``os.pread``: the bytes go through
the operating system's page cache, which is not part of the process's resident set, so
peak RSS stays near the size of a batch however long training runs (a memory map would
count every page it ever touched).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from world_models import locks
from world_models.atomic import atomic_folder

CACHE_VERSION = 1
"""Bumped when the cache layout changes; older caches are rebuilt."""


class FrameFile:
    """uint8 frames (F, H, W, C) stored back to back in a raw file, read with ``os.pread``.

    Supports what `SequenceDataset` needs from a frame array: ``shape``, ``dtype``, ``ndim``,
    ``len``, contiguous slices (a view of the same file) and integer-array indexing (a copy
    in memory, shape ``(*index.shape, H, W, C)``).
    """

    def __init__(
        self, path: str | os.PathLike, frame_shape: tuple[int, ...], start: int = 0,
        stop: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.frame_shape = tuple(int(s) for s in frame_shape)
        self.frame_bytes = int(np.prod(self.frame_shape))
        total = os.path.getsize(self.path) // self.frame_bytes
        self.start = int(start)
        self.stop = total if stop is None else int(stop)
        if not 0 <= self.start <= self.stop <= total:
            raise ValueError(f"frames [{start}, {stop}) out of range for {total} frames in {path}")
        self._fd: int | None = None

    dtype = np.dtype(np.uint8)
    ndim = 4

    @property
    def shape(self) -> tuple[int, ...]:
        """(F, H, W, C)."""
        return (self.stop - self.start, *self.frame_shape)

    def __len__(self) -> int:
        return self.stop - self.start

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)  # type: ignore[arg-type]

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd

    def __getitem__(self, key: Any) -> FrameFile | np.ndarray:
        if isinstance(key, slice):
            a, b, step = key.indices(len(self))
            if step != 1:
                raise IndexError("FrameFile slices must be contiguous (step 1)")
            return FrameFile(self.path, self.frame_shape, self.start + a, self.start + max(a, b))
        index = np.asarray(key)
        if index.dtype.kind not in "iu":
            raise IndexError(f"FrameFile takes slices or integer arrays, got {index.dtype}")
        return self.take(index)

    def take(self, index: np.ndarray) -> np.ndarray:
        """Frames at integer `index` (any shape) -> uint8 (*index.shape, H, W, C), a copy."""
        flat = index.reshape(-1).astype(np.int64)  # (N,)
        n = len(self)
        if flat.size and (flat.min() < -n or flat.max() >= n):
            raise IndexError(f"frame index out of range for {n} frames")
        flat = np.where(flat < 0, flat + n, flat)
        unique, inverse = np.unique(flat, return_inverse=True)  # (U,), (N,)
        buffer = np.empty((len(unique), *self.frame_shape), dtype=np.uint8)  # (U, H, W, C)
        breaks = np.flatnonzero(np.diff(unique) != 1) + 1
        fd = self._file()
        for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(unique)], strict=True):
            first = int(unique[lo]) + self.start
            data = os.pread(fd, (hi - lo) * self.frame_bytes, first * self.frame_bytes)
            if len(data) != (hi - lo) * self.frame_bytes:
                raise OSError(f"short read from {self.path}: is the cache truncated?")
            buffer[lo:hi] = np.frombuffer(data, dtype=np.uint8).reshape(hi - lo, *self.frame_shape)
        return buffer[inverse].reshape(*index.shape, *self.frame_shape)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.take(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype)


def cache_dir(dataset_id: str) -> Path:
    """Hidden folder next to Minari dataset `dataset_id` that holds its frame cache."""
    from minari.storage import get_dataset_path

    path = Path(get_dataset_path(dataset_id))
    return path.parent / f".{path.name}.vwm-cache"


def _fingerprint(dataset_id: str) -> dict[str, Any]:
    """Sizes and modification times of the dataset's data files: changes when it does."""
    from minari.storage import get_dataset_path

    data = Path(get_dataset_path(dataset_id)) / "data"
    files = sorted(p for p in data.rglob("*") if p.is_file())
    return {
        "version": CACHE_VERSION,
        "files": {str(p.relative_to(data)): [p.stat().st_size, p.stat().st_mtime_ns] for p in files},
    }


def _recover(dataset_id: str) -> None:
    """Put back a dataset that a `vwm collect --append` killed mid-commit left parked, unless
    a live writer holds it (then its error names that writer)."""
    from minari.storage import get_dataset_path

    root = get_dataset_path()
    if (locks.dataset_tmp_root(root, dataset_id) / "previous").is_dir():
        with locks.dataset_lock(root, dataset_id):
            locks.recover_dataset(root, dataset_id)


def read_minari(
    dataset_id: str,
    expect_frame_shape: tuple[int, int, int] | None = None,
    cache: bool = True,
) -> dict[str, Any]:
    """The flat arrays of local Minari dataset `dataset_id` (see `SequenceDataset`).

    Returns a dict with ``frames`` (a `FrameFile` over the cache when `cache`, else an
    in-memory uint8 (F, H, W, C) array), ``actions`` (F,) int64 or (F, A) float32,
    ``rewards`` (F,) float32, ``terminated`` (F,) bool, ``offsets`` (E + 1,) int64 and
    ``meta`` (action kind/dim/bounds, frame shape, task id). Without a writable dataset
    folder the cache falls back to memory. Errors as `SequenceDataset.from_minari`.
    """
    import minari
    from minari.storage import get_dataset_path

    if not (Path(get_dataset_path(dataset_id)) / "data").is_dir():
        _recover(dataset_id)
    if not (Path(get_dataset_path(dataset_id)) / "data").is_dir():
        local = sorted(minari.list_local_datasets())
        root = os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")
        raise FileNotFoundError(
            f"no local Minari dataset {dataset_id!r} under {root}; "
            f"local datasets: {local or 'none'} (record one with `vwm collect`)"
        )
    folder = cache_dir(dataset_id)
    fingerprint = _fingerprint(dataset_id)
    if cache and not _cache_matches(folder, fingerprint):
        try:
            _build_cache(dataset_id, folder, fingerprint)
        except OSError:
            cache = False  # read-only dataset folder: hold the frames in memory instead
    if cache:
        meta = json.loads((folder / "meta.json").read_text())
        arrays = dict(np.load(folder / "arrays.npz"))
        frames: Any = FrameFile(folder / "frames.u8", tuple(meta["frame_shape"]))
    else:
        frames_list: list[np.ndarray] = []
        meta, arrays = _read_dataset(dataset_id, frames_list.append)
        frames = np.concatenate(frames_list) if frames_list else None
    shape = tuple(meta["frame_shape"])
    if expect_frame_shape is not None and tuple(expect_frame_shape) != shape:
        raise ValueError(
            f"dataset {dataset_id!r} has frames {shape}, expected {tuple(expect_frame_shape)}"
        )
    return {"frames": frames, **arrays, "meta": meta}


def _cache_matches(folder: Path, fingerprint: dict[str, Any]) -> bool:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return meta.get("fingerprint") == fingerprint and (folder / "frames.u8").is_file()


def _build_cache(dataset_id: str, folder: Path, fingerprint: dict[str, Any]) -> None:
    """Write the cache into a hidden folder, then swap it into place (`atomic_folder`)."""
    with atomic_folder(folder) as tmp:
        with open(tmp / "frames.u8", "wb") as file:
            meta, arrays = _read_dataset(dataset_id, lambda obs: obs.tofile(file))
        np.savez(tmp / "arrays.npz", **arrays)
        (tmp / "meta.json").write_text(json.dumps({**meta, "fingerprint": fingerprint}))


@contextlib.contextmanager
def _reading(dataset_id: str) -> Iterator[None]:
    """Turn Minari's and h5py's errors on a corrupt or foreign dataset (truncated HDF5, bad
    metadata.json, missing episodes) into a ValueError naming the dataset and its folder."""
    try:
        yield
    except (OSError, KeyError, json.JSONDecodeError) as error:
        from minari.storage import get_dataset_path

        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(
            f"cannot read Minari dataset {dataset_id!r} at {get_dataset_path(dataset_id)}: {first:.200} "
            "(is it corrupt or truncated?)"
        ) from None


def _episodes(dataset: Any, dataset_id: str) -> Iterator[Any]:
    """The dataset's episodes, read errors named as `_reading` does."""
    with _reading(dataset_id):
        iterator = iter(dataset.iterate_episodes())
    while True:
        with _reading(dataset_id):
            episode = next(iterator, None)
        if episode is None:
            return
        yield episode


def _read_dataset(dataset_id: str, write) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Stream every episode's frames to `write(obs (N + 1, H, W, C))`; the small arrays."""
    import minari
    from gymnasium import spaces

    with _reading(dataset_id):
        dataset = minari.load_dataset(dataset_id)
    frame_shape = frame_shape_of(dataset.observation_space, dataset_id)
    action_space = dataset.action_space
    num_episodes = dataset.total_episodes
    num_frames = dataset.total_steps + num_episodes
    if num_episodes == 0:
        raise ValueError(f"dataset {dataset_id!r} holds no episodes")
    if isinstance(action_space, spaces.Discrete):
        kind, dim, low, high = "discrete", int(action_space.n), None, None
        actions = np.zeros(num_frames, dtype=np.int64)  # (F,)
    elif isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
        kind, dim = "continuous", int(action_space.shape[0])
        low = [float(v) for v in action_space.low]
        high = [float(v) for v in action_space.high]
        actions = np.zeros((num_frames, dim), dtype=np.float32)  # (F, A)
    else:
        raise ValueError(
            f"dataset {dataset_id!r}: action space {action_space} is neither Discrete nor "
            "a 1-D Box"
        )
    rewards = np.zeros(num_frames, dtype=np.float32)  # (F,)
    terminated = np.zeros(num_frames, dtype=bool)  # (F,)
    offsets = np.zeros(num_episodes + 1, dtype=np.int64)  # (E + 1,)
    start = 0
    for e, episode in enumerate(_episodes(dataset, dataset_id)):
        obs = np.asarray(episode.observations)  # (N + 1, H, W, C) or (N + 1, H, W)
        n = len(episode.rewards)
        if obs.ndim == 3:
            obs = obs[..., None]
        if obs.shape != (n + 1, *frame_shape) or obs.dtype != np.uint8:
            raise ValueError(
                f"dataset {dataset_id!r} episode {episode.id}: observations {obs.dtype} "
                f"{obs.shape}, expected uint8 {(n + 1, *frame_shape)}"
            )
        end = start + n + 1
        if end > num_frames:
            raise ValueError(f"dataset {dataset_id!r}: episodes hold more steps than its metadata")
        write(np.ascontiguousarray(obs))
        acts = np.asarray(episode.actions)
        if kind == "discrete":
            actions[start + 1 : end] = acts.reshape(n) - int(action_space.start)
        else:
            actions[start + 1 : end] = acts.reshape(n, dim)
        rewards[start + 1 : end] = episode.rewards
        terminated[start + 1 : end] = episode.terminations
        offsets[e + 1] = start = end
    if start != num_frames:
        raise ValueError(f"dataset {dataset_id!r}: episodes hold fewer steps than its metadata")
    env_spec = dataset.env_spec
    meta = {
        "dataset_id": dataset_id, "task_id": env_spec.id if env_spec else None,
        "frame_shape": list(frame_shape), "action_kind": kind, "action_dim": dim,
        "action_low": low, "action_high": high,
    }
    arrays = {"actions": actions, "rewards": rewards, "terminated": terminated, "offsets": offsets}
    return meta, arrays


def frame_shape_of(space: Any, dataset_id: str) -> tuple[int, int, int]:
    """(H, W, C) of an image observation space, or a ValueError saying why it is not one."""
    from gymnasium import spaces

    is_box = isinstance(space, spaces.Box)
    if not (is_box and space.dtype == np.uint8 and len(space.shape) in (2, 3)):
        raise ValueError(
            f"dataset {dataset_id!r} does not hold uint8 (H, W, C) frames: its observation "
            f"space is {space}"
        )
    shape = tuple(int(s) for s in space.shape)
    return shape if len(shape) == 3 else (*shape, 1)  # type: ignore[return-value]
