"""Replay of the online loop: finished real episodes in memory and in atomic chunk files.

Episodes are model-aligned (`video_envs.recorder.Episode.model_aligned`): frames (T, H, W, C)
with the action, reward and termination that led to each frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from world_models.atomic import atomic_file
from world_models.data import SequenceDataset


class Replay:
    """Finished real episodes in growing flat arrays, served as a `SequenceDataset` view."""

    def __init__(self, frame_shape: tuple[int, ...], action_shape: tuple[int, ...],
                 action_dtype: np.dtype) -> None:
        self.frames = np.zeros((1024, *frame_shape), np.uint8)  # (capacity, H, W, C)
        self.actions = np.zeros((1024, *action_shape), action_dtype)
        self.rewards = np.zeros(1024, np.float32)
        self.terminated = np.zeros(1024, bool)
        self.offsets = [0]

    @property
    def size(self) -> int:
        """Frames stored."""
        return self.offsets[-1]

    def _grow(self, needed: int) -> None:
        capacity = self.frames.shape[0]
        if needed <= capacity:
            return
        new = max(needed, 2 * capacity)
        for name in ("frames", "actions", "rewards", "terminated"):
            old = getattr(self, name)
            grown = np.zeros((new, *old.shape[1:]), old.dtype)
            grown[: self.size] = old[: self.size]
            setattr(self, name, grown)

    def add(self, episode: dict[str, np.ndarray]) -> None:
        """Append one episode: frames (T, H, W, C), actions, rewards, terminated (T, ...)."""
        n = len(episode["frames"])
        self._grow(self.size + n)
        a, b = self.size, self.size + n
        self.frames[a:b] = episode["frames"]
        self.actions[a:b] = episode["actions"]
        self.rewards[a:b] = episode["rewards"]
        self.terminated[a:b] = episode["terminated"]
        self.offsets.append(b)

    def dataset(self, spec_kind: str, action_dim: int, low=None, high=None) -> SequenceDataset:
        """The episodes as a dataset of views (no copy)."""
        n = self.size
        return SequenceDataset(
            self.frames[:n], self.actions[:n], self.rewards[:n], self.terminated[:n],
            np.asarray(self.offsets), spec_kind, action_dim, low, high,  # type: ignore[arg-type]
        )


def save_chunk(folder: Path, index: int, episodes: list[dict[str, np.ndarray]]) -> None:
    """Write episodes to ``folder/chunk_<index>.npz`` atomically."""
    arrays = {f"{i}_{k}": v for i, ep in enumerate(episodes) for k, v in ep.items()}
    with atomic_file(folder / f"chunk_{index:06d}.npz") as tmp:
        np.savez_compressed(tmp, **arrays)


def load_chunks(folder: Path, upto: int) -> list[dict[str, np.ndarray]]:
    """Episodes of chunks 1..upto (later chunks belong to an unfinished iteration)."""
    episodes = []
    for index in range(1, upto + 1):
        path = folder / f"chunk_{index:06d}.npz"
        if not path.exists():
            continue
        with np.load(path, allow_pickle=False) as data:
            count = len({k.split("_", 1)[0] for k in data.files})
            for i in range(count):
                episodes.append({k: data[f"{i}_{k}"] for k in
                                 ("frames", "actions", "rewards", "terminated")})
    return episodes


