"""Training data: `SequenceBatch` windows sampled from local Minari datasets or raw videos.

The batch type and its conventions (time alignment of actions and rewards, the
``valid`` / ``has_action`` / ``has_reward`` masks) are in `world_models.batch`; both
`SequenceBatch` and `Generator` stay importable from here.

`SequenceDataset` holds every episode once, back to back, in flat arrays (the held-out
split is a view of them); Minari frames stay on disk in a `world_models.storage.FrameFile`
read window by window. `world_models.sources` mixes several datasets in one run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from world_models.batch import Generator, SequenceBatch, randint
from world_models.videofile import load_video_frames  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from world_models.checkpoint import ContextBank


class SequenceDataset:
    """Episodes stored once in flat arrays, sampled as (B, T) windows inside one episode.

    Build it with `from_minari` or `from_videos`. Those return the *training* episodes;
    the first `holdout_episodes` episodes are kept apart in `holdout` (never sampled by
    the training dataset's `sample` or `contexts`).
    """

    def __init__(
        self,
        frames: Any,
        actions: np.ndarray | None,
        rewards: np.ndarray,
        terminated: np.ndarray,
        offsets: np.ndarray,
        action_kind: Literal["discrete", "continuous"],
        action_dim: int,
        action_low: tuple[float, ...] | None = None,
        action_high: tuple[float, ...] | None = None,
        has_actions: bool = True,
        info: dict[str, Any] | None = None,
        has_rewards: bool = True,
    ) -> None:
        """Wrap flat arrays: frames uint8 (F, H, W, C) (an array or a `FrameFile`), actions
        (F,) int64 or (F, A) float32 (None for action-free data), rewards float32 (F,),
        terminated bool (F,); episode e covers rows ``offsets[e]:offsets[e + 1]`` (offsets
        (E + 1,) int64, offsets[0] == 0)."""
        if frames.dtype != np.uint8 or frames.ndim != 4:
            raise ValueError(
                f"frames must be uint8 (F, H, W, C), got {frames.dtype} {frames.shape}"
            )
        n = frames.shape[0]
        arrays = (("actions", actions), ("rewards", rewards), ("terminated", terminated))
        for name, array in arrays:
            if array is not None and array.shape[0] != n:
                raise ValueError(f"{name} has {array.shape[0]} rows but frames has {n}")
        if offsets[0] != 0 or offsets[-1] != n or np.any(np.diff(offsets) < 2):
            raise ValueError("offsets must rise from 0 to len(frames), 2+ frames per episode")
        self.frames = frames  # (F, H, W, C) uint8
        self.has_actions = bool(has_actions and actions is not None)
        """False for action-free data (videos, --ignore-actions): actions read as zeros."""
        self.actions = actions if self.has_actions else None  # (F,) int64 or (F, A) float32
        self.rewards = rewards  # (F,) float32
        self.terminated = terminated  # (F,) bool
        self.has_rewards = bool(has_rewards)
        """False for videos: rewards and terminations are not real."""
        self.offsets = offsets.astype(np.int64)  # (E + 1,)
        self.action_kind: Literal["discrete", "continuous"] = action_kind
        self.action_dim = int(action_dim)
        self.action_low = action_low
        self.action_high = action_high
        self.info: dict[str, Any] = dict(info or {})
        """Where the data came from: dataset id, task id, video paths."""
        self.holdout: SequenceDataset | None = None
        """The held-out episodes (evaluation only), or None when none were held out."""
        self._is_first = np.zeros(n, dtype=bool)  # (F,)
        self._is_first[self.offsets[:-1]] = True

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_minari(
        cls,
        dataset_id: str,
        holdout_episodes: int = 0,
        expect_frame_shape: tuple[int, int, int] | None = None,
        ignore_actions: bool = False,
        cache: bool = True,
    ) -> SequenceDataset:
        """Load local Minari dataset `dataset_id` (root: ``MINARI_DATASETS_PATH``).

        Returns the training episodes; the first `holdout_episodes` episodes go to
        ``.holdout``. With `cache` (default) the frames are copied once into an on-disk
        cache next to the dataset and read window by window (`world_models.storage`);
        otherwise they are held in memory. `ignore_actions` keeps the action space (for
        the model's spec) but marks every action unknown (``has_action`` False).
        Raises FileNotFoundError for an unknown id (listing the local ones) and ValueError
        when observations are not uint8 (H, W, C) frames, differ from
        `expect_frame_shape`, or actions are neither Discrete nor a 1-D Box.
        """
        from world_models.storage import read_minari

        data = read_minari(dataset_id, expect_frame_shape, cache=cache)
        meta = data["meta"]
        full = cls(
            data["frames"], data["actions"], data["rewards"], data["terminated"],
            data["offsets"], meta["action_kind"], meta["action_dim"],
            None if meta["action_low"] is None else tuple(meta["action_low"]),
            None if meta["action_high"] is None else tuple(meta["action_high"]),
            has_actions=not ignore_actions,
            info={"dataset_id": dataset_id, "task_id": meta["task_id"],
                  "ignore_actions": ignore_actions},
        )
        return full._split(holdout_episodes)

    @classmethod
    def from_videos(
        cls,
        paths: Sequence[str | os.PathLike],
        size: int | tuple[int, int] | None = None,
        holdout_episodes: int = 0,
    ) -> SequenceDataset:
        """Action-free, reward-free data: one episode per video.

        Frames of every video must share one shape (pass `size` to resize them).
        ``has_actions`` and ``has_rewards`` are False (every sampled mask says so); the
        action space defaults to "discrete" with `action_dim` 1 until
        `world_models.sources.with_action_space` gives it the model's.
        """
        from world_models.sources import load_videos

        return load_videos(cls, paths, size)._split(holdout_episodes)

    def _subset(self, first: int, last: int) -> SequenceDataset:
        """Episodes [first, last) as a new dataset over views of the same arrays."""
        a, b = int(self.offsets[first]), int(self.offsets[last])
        return SequenceDataset(
            self.frames[a:b],
            None if self.actions is None else self.actions[a:b],
            self.rewards[a:b],
            self.terminated[a:b],
            self.offsets[first : last + 1] - a,
            self.action_kind,
            self.action_dim,
            self.action_low,
            self.action_high,
            self.has_actions,
            self.info,
            self.has_rewards,
        )

    def _split(self, holdout_episodes: int) -> SequenceDataset:
        """The last E - k episodes, with the first k attached as `.holdout`.

        The first episodes are held out because they are complete: a collection run ends
        with the episodes the step budget cut short, which would show no real ending.
        """
        if holdout_episodes == 0:
            return self
        total = self.num_episodes
        if not 0 <= holdout_episodes < total:
            raise ValueError(
                f"holdout_episodes={holdout_episodes} must be in [0, {total - 1}]: the dataset "
                f"holds {total} episodes and training needs at least one"
            )
        train = self._subset(holdout_episodes, total)
        train.holdout = self._subset(0, holdout_episodes)
        return train

    # ------------------------------------------------------------------ properties

    @property
    def train(self) -> SequenceDataset:
        """The training episodes: this dataset itself (the held-out ones live in `holdout`)."""
        return self

    @property
    def task_id(self) -> str | None:
        """Gymnasium id of the task the data was recorded on (None for videos)."""
        return self.info.get("task_id")

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every frame."""
        return tuple(int(s) for s in self.frames.shape[1:])  # type: ignore[return-value]

    @property
    def num_episodes(self) -> int:
        """Number of episodes."""
        return len(self.offsets) - 1

    @property
    def num_frames(self) -> int:
        """Number of frames (steps plus one first frame per episode)."""
        return int(self.frames.shape[0])

    @property
    def num_steps(self) -> int:
        """Number of environment transitions."""
        return self.num_frames - self.num_episodes

    @property
    def episode_lengths(self) -> np.ndarray:
        """(E,) number of frames of each episode."""
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return self.num_episodes

    def __repr__(self) -> str:
        held = self.holdout.num_episodes if self.holdout is not None else 0
        labels = "actions" if self.has_actions else "no actions"
        return (
            f"SequenceDataset({self.num_episodes} episodes, {self.num_steps} steps, frames "
            f"{self.frame_shape}, {self.action_kind} actions ({self.action_dim}, {labels}), "
            f"{held} held out)"
        )

    # ------------------------------------------------------------------ access

    def _actions_at(self, index: np.ndarray) -> np.ndarray:
        """Actions at flat rows `index` (...), zeros of the action space when action-free."""
        if self.actions is not None:
            return self.actions[index]
        if self.action_kind == "discrete":
            return np.zeros(index.shape, dtype=np.int64)
        return np.zeros((*index.shape, self.action_dim), dtype=np.float32)

    def _rows(self, index: np.ndarray, valid: np.ndarray | None = None) -> SequenceBatch:
        """Gather flat rows `index` (B, T) into a batch (copies); `valid` (B, T) marks real
        frames (default all): elsewhere actions, rewards and flags read as zero."""
        valid = np.ones(index.shape, dtype=bool) if valid is None else valid  # (B, T)
        is_first = self._is_first[index] & valid  # (B, T)
        actions = self._actions_at(index)  # (B, T) or (B, T, A)
        has_action = valid & ~is_first & self.has_actions  # (B, T)
        actions[~has_action] = 0
        return SequenceBatch(
            frames=torch.from_numpy(np.ascontiguousarray(self.frames[index])),  # (B, T, H, W, C)
            actions=torch.from_numpy(actions),
            rewards=torch.from_numpy(np.where(valid, self.rewards[index], 0).astype(np.float32)),
            terminated=torch.from_numpy(self.terminated[index] & valid),  # (B, T)
            is_first=torch.from_numpy(is_first),
            valid=torch.from_numpy(valid),
            has_action=torch.from_numpy(has_action),
            has_reward=torch.from_numpy(valid & self.has_rewards),
        )

    def sample(self, batch_size: int, seq_len: int, generator: Generator) -> SequenceBatch:
        """`batch_size` windows of `seq_len` frames around anchor frames drawn uniformly.

        A window never crosses an episode boundary: it holds its anchor frame at an offset
        drawn uniformly in [0, seq_len) and is shifted to fit inside the episode. Every frame
        is thus an anchor as often as any other, and an episode's last (terminal) frame is in
        about (seq_len + 1) / 2 windows per seq_len a middle frame is in; windows drawn
        uniformly over the positions that fit would hold it seq_len times less often than a
        middle frame, and a continue head would rarely learn endings (DreamerV3 samples
        across episode boundaries for the same reason). An episode shorter than `seq_len`
        gives its one window padded at the end with copies of its last frame marked
        ``valid=False`` (zero action and reward, not terminal, not ``is_first``), so
        ``is_first`` is true exactly on real first frames and losses skip the padding.
        """
        if batch_size < 1 or seq_len < 1:
            raise ValueError(f"batch_size and seq_len must be >= 1, got {batch_size}, {seq_len}")
        if self.num_episodes == 0:
            raise ValueError("cannot sample from an empty dataset")
        anchor = randint(generator, self.num_frames, batch_size)  # (B,) flat rows
        shift = randint(generator, seq_len, batch_size)  # (B,) the anchor's place in its window
        episode = np.searchsorted(self.offsets, anchor, side="right") - 1  # (B,)
        first = self.offsets[episode]  # (B,)
        frames = self.offsets[episode + 1] - first  # (B,) frames of the anchor's episode
        start = first + np.clip(anchor - first - shift, 0, np.maximum(frames - seq_len, 0))  # (B,)
        real = np.minimum(frames, seq_len)  # (B,)
        t = np.arange(seq_len)  # (T,)
        valid = t[None, :] < real[:, None]  # (B, T)
        index = start[:, None] + np.minimum(t[None, :], real[:, None] - 1)  # (B, T) pad: last
        return self._rows(index, valid)

    def contexts(self, n: int, length: int, generator: Generator) -> ContextBank:
        """`n` real start contexts: the first `length` frames of random episodes.

        Only episodes with more than `length` frames qualify, so a context never holds
        a terminal frame. Returns a `world_models.checkpoint.ContextBank` with frames
        uint8 (n, length, H, W, C) and aligned actions (n, length[, A]) (zeros for
        action-free data).
        """
        from world_models.checkpoint import ContextBank

        if n < 1 or length < 1:
            raise ValueError(f"n and length must be >= 1, got {n}, {length}")
        eligible = np.flatnonzero(self.episode_lengths > length)  # (E',)
        if len(eligible) == 0:
            longest = int(self.episode_lengths.max()) if self.num_episodes else 0
            raise ValueError(
                f"no episode is longer than the context length {length} (longest: {longest} "
                "frames); collect longer episodes or use a shorter context"
            )
        episodes = eligible[randint(generator, len(eligible), n)]  # (n,)
        index = self.offsets[episodes][:, None] + np.arange(length)[None, :]  # (n, T)
        batch = self._rows(index)
        return ContextBank(frames=batch.frames, actions=batch.actions)

    def end_windows(self, length: int, limit: int | None = None) -> SequenceBatch | None:
        """The last `length` frames of (up to `limit` of) the episodes at least that long.

        Evaluation uses them so that episode ends, and so terminations, are always seen.
        Returns None when no episode is long enough.
        """
        eligible = np.flatnonzero(self.episode_lengths >= length)[:limit]  # (E',)
        if len(eligible) == 0:
            return None
        index = self.offsets[eligible + 1][:, None] - length + np.arange(length)[None, :]
        return self._rows(index)  # (E', length)

    def episode(self, i: int) -> SequenceBatch:
        """Episode `i` as a (1, T) batch (a copy)."""
        if not -self.num_episodes <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range for {self.num_episodes} episodes")
        i %= self.num_episodes
        return self._rows(np.arange(self.offsets[i], self.offsets[i + 1])[None])  # (1, T)

    def episodes(self) -> Iterator[SequenceBatch]:
        """Every episode in order, each a (1, T_e) batch."""
        for i in range(self.num_episodes):
            yield self.episode(i)
