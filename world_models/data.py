"""Training data: `SequenceBatch` windows sampled from local Minari datasets or raw videos.

Time alignment follows `world_models.base`: ``actions[:, t]`` led into ``frames[:, t]``.
An episode of N steps (observations ``o_0..o_N``, actions ``a_0..a_{N-1}``) becomes N + 1
frames::

    frames     = o_0,   o_1,     ..., o_N
    actions    = 0,     a_0,     ..., a_{N-1}
    rewards    = 0,     r_0,     ..., r_{N-1}
    terminated = False, term_0,  ..., term_{N-1}
    is_first   = True,  False,   ..., False

`SequenceDataset` holds every episode once, back to back, in flat preallocated arrays.
Memory is ``(num_steps + num_episodes) * H * W * C`` bytes of frames (50k steps of 64x64
RGB: ~615 MB) plus a few bytes per step for actions, rewards and flags; the held-out
split and `episodes()` are views of the same arrays, not copies.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from world_models.checkpoint import ContextBank

Generator = np.random.Generator | torch.Generator
"""Either kind of seeded random generator accepted by the samplers."""


class SequenceBatch(NamedTuple):
    """A batch of (B, T) windows; every field is a torch tensor with batch and time first."""

    frames: Tensor
    """uint8 (B, T, H, W, C)."""
    actions: Tensor
    """int64 (B, T) for discrete or float32 (B, T, A) for continuous; zero where is_first."""
    rewards: Tensor
    """float32 (B, T): reward received on arriving at frame t (zero where is_first)."""
    terminated: Tensor
    """bool (B, T): frame t is terminal."""
    is_first: Tensor
    """bool (B, T): frame t starts an episode."""

    def to(self, device: torch.device | str) -> SequenceBatch:
        """The same batch on `device`."""
        return SequenceBatch(*(t.to(device) for t in self))


def _randint(generator: Generator, high: int, size: int) -> np.ndarray:
    """(size,) int64 uniform in [0, high) from a numpy or torch generator."""
    if isinstance(generator, np.random.Generator):
        return generator.integers(0, high, size=size, dtype=np.int64)
    if isinstance(generator, torch.Generator):
        return torch.randint(high, (size,), generator=generator).numpy()
    raise TypeError(
        f"generator must be a numpy.random.Generator or torch.Generator, got {type(generator)}"
    )


class SequenceDataset:
    """Episodes stored once in flat arrays, sampled as (B, T) windows inside one episode.

    Build it with `from_minari` or `from_videos`. Those return the *training* episodes;
    the first `holdout_episodes` episodes are kept apart in `holdout` (never sampled by
    the training dataset's `sample` or `contexts`).
    """

    def __init__(
        self,
        frames: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        offsets: np.ndarray,
        action_kind: Literal["discrete", "continuous"],
        action_dim: int,
        action_low: tuple[float, ...] | None = None,
        action_high: tuple[float, ...] | None = None,
        has_actions: bool = True,
        info: dict[str, Any] | None = None,
    ) -> None:
        """Wrap flat arrays: frames uint8 (F, H, W, C), actions (F,) int64 or (F, A) float32,
        rewards float32 (F,), terminated bool (F,); episode e covers rows
        ``offsets[e]:offsets[e + 1]`` (offsets (E + 1,) int64, offsets[0] == 0)."""
        if frames.dtype != np.uint8 or frames.ndim != 4:
            raise ValueError(
                f"frames must be uint8 (F, H, W, C), got {frames.dtype} {frames.shape}"
            )
        n = frames.shape[0]
        for name, array in (("actions", actions), ("rewards", rewards), ("terminated", terminated)):
            if array.shape[0] != n:
                raise ValueError(f"{name} has {array.shape[0]} rows but frames has {n}")
        if offsets[0] != 0 or offsets[-1] != n or np.any(np.diff(offsets) < 2):
            raise ValueError("offsets must rise from 0 to len(frames), 2+ frames per episode")
        self.frames = frames  # (F, H, W, C) uint8
        self.actions = actions  # (F,) int64 or (F, A) float32
        self.rewards = rewards  # (F,) float32
        self.terminated = terminated  # (F,) bool
        self.offsets = offsets.astype(np.int64)  # (E + 1,)
        self.action_kind: Literal["discrete", "continuous"] = action_kind
        self.action_dim = int(action_dim)
        self.action_low = action_low
        self.action_high = action_high
        self.has_actions = has_actions
        """False for action-free video data (actions are all zero)."""
        self.info: dict[str, Any] = dict(info or {})
        """Where the data came from: dataset id, task id, video paths."""
        self.holdout: SequenceDataset | None = None
        """The held-out episodes (evaluation only), or None when none were held out."""
        self._is_first = np.zeros(n, dtype=bool)  # (F,)
        self._is_first[self.offsets[:-1]] = True
        self._windows: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_minari(
        cls,
        dataset_id: str,
        holdout_episodes: int = 0,
        expect_frame_shape: tuple[int, int, int] | None = None,
    ) -> SequenceDataset:
        """Load local Minari dataset `dataset_id` (root: ``MINARI_DATASETS_PATH``).

        Returns the training episodes; the first `holdout_episodes` episodes go to
        ``.holdout``. Raises FileNotFoundError for an unknown id (listing the local ones)
        and ValueError when observations are not uint8 (H, W, C) frames, differ from
        `expect_frame_shape`, or actions are neither Discrete nor a 1-D Box.
        """
        import minari
        from gymnasium import spaces
        from minari.storage import get_dataset_path

        if not (Path(get_dataset_path(dataset_id)) / "data").is_dir():
            local = sorted(minari.list_local_datasets())
            root = os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")
            raise FileNotFoundError(
                f"no local Minari dataset {dataset_id!r} under {root}; "
                f"local datasets: {local or 'none'} (record one with `vwm collect`)"
            )
        dataset = minari.load_dataset(dataset_id)
        frame_shape = _frame_shape(dataset.observation_space, dataset_id)
        if expect_frame_shape is not None and tuple(expect_frame_shape) != frame_shape:
            raise ValueError(
                f"dataset {dataset_id!r} has frames {frame_shape}, expected "
                f"{tuple(expect_frame_shape)}"
            )
        action_space = dataset.action_space
        num_episodes = dataset.total_episodes
        num_frames = dataset.total_steps + num_episodes
        if num_episodes == 0:
            raise ValueError(f"dataset {dataset_id!r} holds no episodes")
        frames = np.empty((num_frames, *frame_shape), dtype=np.uint8)  # (F, H, W, C)
        if isinstance(action_space, spaces.Discrete):
            kind, dim = "discrete", int(action_space.n)
            low = high = None
            actions = np.zeros(num_frames, dtype=np.int64)  # (F,)
        elif isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
            kind, dim = "continuous", int(action_space.shape[0])
            low = tuple(float(v) for v in action_space.low)
            high = tuple(float(v) for v in action_space.high)
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
        for e, episode in enumerate(dataset.iterate_episodes()):
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
                raise ValueError(
                    f"dataset {dataset_id!r}: episodes hold more steps than its metadata"
                )
            frames[start:end] = obs
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
        info = {"dataset_id": dataset_id, "task_id": env_spec.id if env_spec else None}
        full = cls(frames, actions, rewards, terminated, offsets, kind, dim, low, high, info=info)
        return full._split(holdout_episodes)

    @classmethod
    def from_videos(
        cls,
        paths: Sequence[str | os.PathLike],
        size: int | tuple[int, int] | None = None,
        holdout_episodes: int = 0,
    ) -> SequenceDataset:
        """Action-free data: one episode per video, actions and rewards all zero.

        Frames of every video must share one shape (pass `size` to resize them).
        `action_kind` is "discrete" with `action_dim` 1 and `has_actions` is False.
        """
        if not paths:
            raise ValueError("from_videos needs at least one video path")
        videos = [load_video_frames(p, size) for p in paths]  # each (T_i, H, W, 3)
        shapes = {v.shape[1:] for v in videos}
        if len(shapes) > 1:
            raise ValueError(f"videos have different frame shapes {sorted(shapes)}; pass size=")
        short = [str(p) for p, v in zip(paths, videos, strict=True) if len(v) < 2]
        if short:
            raise ValueError(f"videos with fewer than 2 frames: {short}")
        lengths = np.array([len(v) for v in videos], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])  # (E + 1,)
        num_frames = int(offsets[-1])
        frames = np.empty((num_frames, *videos[0].shape[1:]), dtype=np.uint8)  # (F, H, W, 3)
        for v, a, b in zip(videos, offsets[:-1], offsets[1:], strict=True):
            frames[a:b] = v
        del videos
        full = cls(
            frames,
            np.zeros(num_frames, dtype=np.int64),
            np.zeros(num_frames, dtype=np.float32),
            np.zeros(num_frames, dtype=bool),
            offsets,
            "discrete",
            1,
            has_actions=False,
            info={"videos": [str(p) for p in paths], "task_id": None},
        )
        return full._split(holdout_episodes)

    def _subset(self, first: int, last: int) -> SequenceDataset:
        """Episodes [first, last) as a new dataset over views of the same arrays."""
        a, b = int(self.offsets[first]), int(self.offsets[last])
        return SequenceDataset(
            self.frames[a:b],
            self.actions[a:b],
            self.rewards[a:b],
            self.terminated[a:b],
            self.offsets[first : last + 1] - a,
            self.action_kind,
            self.action_dim,
            self.action_low,
            self.action_high,
            self.has_actions,
            self.info,
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
        return (
            f"SequenceDataset({self.num_episodes} episodes, {self.num_steps} steps, frames "
            f"{self.frame_shape}, {self.action_kind} actions ({self.action_dim}), "
            f"{held} held out)"
        )

    # ------------------------------------------------------------------ access

    def _rows(self, index: np.ndarray) -> SequenceBatch:
        """Gather flat rows `index` (B, T) into a batch (copies)."""
        return SequenceBatch(
            frames=torch.from_numpy(self.frames[index]),  # (B, T, H, W, C)
            actions=torch.from_numpy(self.actions[index]),  # (B, T) or (B, T, A)
            rewards=torch.from_numpy(self.rewards[index]),  # (B, T)
            terminated=torch.from_numpy(self.terminated[index]),  # (B, T)
            is_first=torch.from_numpy(self._is_first[index]),  # (B, T)
        )

    def _window_starts(self, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        """Every window start (flat row) and its number of real frames, for `seq_len`."""
        if seq_len not in self._windows:
            lengths = self.episode_lengths  # (E,)
            counts = np.maximum(lengths - seq_len + 1, 1)  # (E,) windows per episode
            first = np.repeat(self.offsets[:-1], counts)  # (W,)
            within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            valid = np.repeat(np.minimum(lengths, seq_len), counts)  # (W,)
            self._windows[seq_len] = (first + within, valid)
        return self._windows[seq_len]

    def sample(self, batch_size: int, seq_len: int, generator: Generator) -> SequenceBatch:
        """`batch_size` windows of `seq_len` frames, uniform over all window positions.

        A window never crosses an episode boundary. An episode shorter than `seq_len`
        gives one window padded at the end with copies of the episode's first frame,
        flagged ``is_first`` (zero action and reward, not terminal): each padding step
        reads as a fresh episode start, so no mask is needed. ``is_first`` is therefore
        true only at index 0 and on padding.
        """
        if batch_size < 1 or seq_len < 1:
            raise ValueError(f"batch_size and seq_len must be >= 1, got {batch_size}, {seq_len}")
        if self.num_episodes == 0:
            raise ValueError("cannot sample from an empty dataset")
        starts, valid = self._window_starts(seq_len)
        pick = _randint(generator, len(starts), batch_size)  # (B,)
        start, real = starts[pick], valid[pick]  # (B,), (B,)
        t = np.arange(seq_len)  # (T,)
        index = start[:, None] + t[None, :]  # (B, T)
        index = np.where(t[None, :] < real[:, None], index, start[:, None])  # pad: first frame
        return self._rows(index)

    def contexts(self, n: int, length: int, generator: Generator) -> ContextBank:
        """`n` real start contexts: the first `length` frames of random episodes.

        Only episodes with more than `length` frames qualify, so a context never holds
        a terminal frame. Returns a `world_models.checkpoint.ContextBank` with frames
        uint8 (n, length, H, W, C) and aligned actions (n, length[, A]).
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
        episodes = eligible[_randint(generator, len(eligible), n)]  # (n,)
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
        """Episode `i` as a (1, T) batch of zero-copy views."""
        if not -self.num_episodes <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range for {self.num_episodes} episodes")
        i %= self.num_episodes
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return SequenceBatch(
            *(
                torch.from_numpy(x[a:b])[None]
                for x in (self.frames, self.actions, self.rewards, self.terminated, self._is_first)
            )
        )

    def episodes(self) -> Iterator[SequenceBatch]:
        """Every episode in order, each a (1, T_e) batch of zero-copy views."""
        for i in range(self.num_episodes):
            yield self.episode(i)


def _frame_shape(space: Any, dataset_id: str) -> tuple[int, int, int]:
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


def load_video_frames(
    path: str | os.PathLike, size: int | tuple[int, int] | None = None
) -> np.ndarray:
    """Every frame of an mp4/gif (anything ffmpeg reads) as uint8 (T, H, W, 3).

    Decodes with the ffmpeg binary that moviepy itself uses (imageio-ffmpeg), frame by
    frame with no frame-rate resampling: moviepy's own reader derives the frame count
    from the rounded duration and drops the last frame of short clips. `size` resizes
    frames to (size, size) or (H, W) (bilinear). Raises FileNotFoundError for a missing
    file and ValueError for an unreadable one.
    """
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no video file at {path}")
    try:
        reader = imageio_ffmpeg.read_frames(
            str(path), pix_fmt="rgb24", output_params=["-fps_mode", "passthrough"]
        )
        meta = next(reader)
        w, h = meta["size"]
        frames = [np.frombuffer(b, dtype=np.uint8).reshape(h, w, 3) for b in reader]
    except Exception as error:  # ffmpeg failures surface as OSError/RuntimeError/KeyError
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"cannot read video {path}: {first_line}") from error
    if not frames:
        raise ValueError(f"video {path} holds no frames")
    video = np.stack(frames)  # (T, H, W, 3)
    if size is not None:
        video = _resize(video, (size, size) if isinstance(size, int) else tuple(size))
    return video


def _resize(video: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of uint8 (T, H, W, 3) frames to (T, size[0], size[1], 3)."""
    from PIL import Image

    h, w = size
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size}")
    if video.shape[1:3] == (h, w):
        return video
    out = np.empty((len(video), h, w, 3), dtype=np.uint8)  # (T, h, w, 3)
    for i, frame in enumerate(video):
        out[i] = np.asarray(Image.fromarray(frame).resize((w, h), Image.BILINEAR))
    return out
