"""Several training sources in one run: a Minari dataset, its actions ignored or not, plus videos.

`load_sources` builds the sources `vwm train-model` was given and `MixedDataset` samples
them together: each batch row comes from one source, drawn with probability proportional
to the source's frames, and carries that source's masks (`world_models.batch`). Every
source reads actions of one shared action space, which comes from, in order:
``--action-space``, the Minari dataset, or `DEFAULT_VIDEO_ACTION_SPACE` for videos alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from world_models.batch import Generator, SequenceBatch, randint
from world_models.data import SequenceDataset
from world_models.videofile import load_video_frames, video_paths

if TYPE_CHECKING:
    from world_models.checkpoint import ContextBank


class ActionSpace(NamedTuple):
    """An action space as the model's spec describes it."""

    kind: str
    """"discrete" or "continuous"."""
    dim: int
    """Number of discrete actions, or length of a continuous action."""
    low: tuple[float, ...] | None = None
    """Lower bounds of a continuous action."""
    high: tuple[float, ...] | None = None
    """Upper bounds of a continuous action."""


DEFAULT_VIDEO_ACTION_SPACE = ActionSpace("discrete", 1)
"""Action space of a model trained on videos alone without ``--action-space``: Discrete(1),
the single "no action" that the model saw on every frame. Such a model is a video
generator: its imagined env takes one action and continues the video."""


def parse_action_space(text: str) -> ActionSpace:
    """``discrete:N`` or ``continuous:A`` (bounds [-1, 1]) or ``continuous:A:LOW:HIGH``."""
    parts = text.strip().lower().split(":")
    try:
        if parts[0] == "discrete" and len(parts) == 2 and int(parts[1]) >= 1:
            return ActionSpace("discrete", int(parts[1]))
        if parts[0] in ("continuous", "box") and len(parts) in (2, 4) and int(parts[1]) >= 1:
            dim = int(parts[1])
            low, high = (float(parts[2]), float(parts[3])) if len(parts) == 4 else (-1.0, 1.0)
            if low < high:
                return ActionSpace("continuous", dim, (low,) * dim, (high,) * dim)
    except ValueError:
        pass
    raise ValueError(
        f"--action-space must look like discrete:N, continuous:A or continuous:A:LOW:HIGH, "
        f"got {text!r}"
    )


def load_videos(
    cls: type[SequenceDataset],
    paths: Sequence[str | os.PathLike],
    size: int | tuple[int, int] | None = None,
) -> SequenceDataset:
    """One action-free, reward-free episode per video file (see `SequenceDataset.from_videos`)."""
    if not paths:
        raise ValueError("from_videos needs at least one video path")
    videos = [load_video_frames(p, size) for p in paths]  # each (T_i, H, W, 3)
    shapes = {v.shape[1:] for v in videos}
    if len(shapes) > 1:
        raise ValueError(f"videos have different frame shapes {sorted(shapes)}; pass size=")
    short = [str(p) for p, v in zip(paths, videos, strict=True) if len(v) < 2]
    if short:
        raise ValueError(f"videos with fewer than 2 frames: {short}")
    offsets = np.concatenate([[0], np.cumsum([len(v) for v in videos])])  # (E + 1,)
    frames = np.concatenate(videos)  # (F, H, W, 3)
    n = len(frames)
    return cls(
        frames, None, np.zeros(n, dtype=np.float32), np.zeros(n, dtype=bool), offsets,
        "discrete", 1, has_actions=False, has_rewards=False,
        info={"videos": [str(p) for p in paths], "task_id": None},
    )


def with_action_space(data: SequenceDataset, space: ActionSpace) -> SequenceDataset:
    """Action-free `data` (and its holdout) reading zero actions of `space`."""
    if data.has_actions:
        raise ValueError("only action-free data can take another action space")
    out = data._subset(0, data.num_episodes)
    out.action_kind, out.action_dim = space.kind, int(space.dim)  # type: ignore[assignment]
    out.action_low, out.action_high = space.low, space.high
    if data.holdout is not None:
        out.holdout = with_action_space(data.holdout, space)
    return out


class MixedDataset:
    """Training sources sampled together, rows drawn in proportion to each source's frames.

    The first source is the primary one: it gives the held-out episodes, the task id and,
    when it has actions (else the first source that has), the start contexts.
    """

    def __init__(self, sources: Sequence[SequenceDataset],
                 shares: Sequence[float | None] | None = None) -> None:
        """`shares`: per source, the fraction of each batch's rows it gives, or None (the
        sources without one split the rest in proportion to their frames)."""
        if not sources:
            raise ValueError("need at least one training source")
        first = sources[0]
        for source in sources[1:]:
            if source.frame_shape != first.frame_shape:
                raise ValueError(
                    f"sources have different frame shapes {first.frame_shape} and "
                    f"{source.frame_shape}"
                )
            if (source.action_kind, source.action_dim) != (first.action_kind, first.action_dim):
                raise ValueError("sources read different action spaces")
        self.sources = list(sources)
        self.cumulative = np.cumsum([s.num_frames for s in self.sources])  # (S,)
        self.probabilities = source_probabilities([s.num_frames for s in self.sources],
                                                  list(shares) if shares else [None] * len(self.sources))

    @property
    def primary(self) -> SequenceDataset:
        """The first source."""
        return self.sources[0]

    @property
    def holdout(self) -> SequenceDataset | None:
        """Held-out episodes of the primary source (None when none were held out)."""
        return self.primary.holdout

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every frame."""
        return self.primary.frame_shape

    @property
    def action_space(self) -> ActionSpace:
        """The action space every source reads."""
        p = self.primary
        return ActionSpace(p.action_kind, p.action_dim, p.action_low, p.action_high)

    @property
    def task_id(self) -> str | None:
        """Task of the first source recorded on one (None for videos only)."""
        return next((s.task_id for s in self.sources if s.task_id), None)

    @property
    def num_frames(self) -> int:
        """Frames over all sources."""
        return int(self.cumulative[-1])

    def describe(self) -> list[dict[str, Any]]:
        """JSON-serialisable summary of each source (for the checkpoint's config)."""
        return [
            {"frames": s.num_frames, "episodes": s.num_episodes, "has_actions": s.has_actions,
             "has_rewards": s.has_rewards, **{k: v for k, v in s.info.items() if k != "videos"},
             **({"videos": len(s.info["videos"])} if "videos" in s.info else {})}
            for s in self.sources
        ]

    def sample(self, batch_size: int, seq_len: int, generator: Generator) -> SequenceBatch:
        """(B, T) windows, each row from a source drawn with `probabilities` (by default in
        proportion to its frames)."""
        if len(self.sources) == 1:
            return self.primary.sample(batch_size, seq_len, generator)
        resolution = 1 << 30
        draws = randint(generator, resolution, batch_size)  # (B,) uniform in [0, 1) * resolution
        edges = np.round(np.cumsum(self.probabilities) * resolution)  # (S,)
        which = np.minimum(np.searchsorted(edges, draws, side="right"), len(self.sources) - 1)  # (B,)
        parts, rows = [], []
        for k, source in enumerate(self.sources):
            picked = np.flatnonzero(which == k)
            if len(picked):
                parts.append(source.sample(len(picked), seq_len, generator))
                rows.append(picked)
        order = torch.from_numpy(np.argsort(np.concatenate(rows), kind="stable"))
        return SequenceBatch(*(torch.cat(field)[order] for field in zip(*parts, strict=True)))

    def contexts(self, n: int, length: int, generator: Generator) -> ContextBank:
        """Start contexts from the first source with actions (else the primary one); a few
        labelled episodes beside action-free ones (`label_episodes`) are not used for them."""
        source = next((s for s in self.sources if s.has_actions and "label_episodes" not in s.info),
                      self.primary)
        return source.contexts(n, length, generator)


LABELLED_SHARE = 0.25
"""Fraction of each batch drawn from the labelled episodes kept by `label_episodes`."""


def source_probabilities(frames: Sequence[int], shares: Sequence[float | None]) -> np.ndarray:
    """(S,) sampling probability of each source: its share where given, else the rest split
    in proportion to `frames`."""
    fixed = sum(x for x in shares if x is not None)
    if any(x is not None and not 0 < x < 1 for x in shares) or fixed >= 1:
        raise ValueError(f"source shares must be in (0, 1) and sum below 1, got {list(shares)}")
    free = sum(n for n, x in zip(frames, shares, strict=True) if x is None)
    return np.array([x if x is not None else (1 - fixed) * n / free
                     for n, x in zip(frames, shares, strict=True)])


def load_sources(
    dataset: str = "",
    videos: Sequence[str] = (),
    ignore_actions: bool = False,
    action_space: str = "",
    holdout_episodes: int = 0,
    video_size: int = 64,
    label_episodes: int = 0,
) -> MixedDataset:
    """The sources of one training run (see the module docstring for the action space).

    `dataset` is a Minari id (optional when `videos` are given); `videos` are files,
    folders or comma lists. Videos are resized to the dataset's frames, or to
    `video_size` squares when there is no dataset (0 keeps their size). Held-out episodes
    come from the primary source: the dataset when given, else the videos. With
    `ignore_actions`, `label_episodes` > 0 keeps the actions of the dataset's first that
    many training episodes, as a source that gives `LABELLED_SHARE` of every batch (a few
    labelled episodes beside action-free data).
    """
    if label_episodes and not (dataset and ignore_actions):
        raise ValueError("--label-episodes keeps the actions of a few --dataset episodes; it needs "
                         "--dataset and --ignore-actions")
    paths = video_paths(videos)
    if not dataset and not paths:
        raise ValueError("nothing to train on: give --dataset, --videos, or both")
    asked = parse_action_space(action_space) if action_space else None
    sources: list[SequenceDataset] = []
    if dataset:
        data = SequenceDataset.from_minari(dataset, holdout_episodes, ignore_actions=ignore_actions)
        own = ActionSpace(data.action_kind, data.action_dim, data.action_low, data.action_high)
        if asked is not None and data.has_actions and asked[:2] != own[:2]:
            raise ValueError(
                f"--action-space {action_space} differs from dataset {dataset!r}'s actions "
                f"{own.kind}:{own.dim}; drop it or pass --ignore-actions"
            )
        space = own if asked is None or data.has_actions else asked
        sources.append(data if data.has_actions else with_action_space(data, space))
    else:
        space = asked or DEFAULT_VIDEO_ACTION_SPACE
    if paths:
        if sources and sources[0].frame_shape[2] != 3:
            raise ValueError(
                f"videos are RGB but dataset {dataset!r} has frames {sources[0].frame_shape}"
            )
        size = sources[0].frame_shape[:2] if sources else (video_size or None)
        clips = SequenceDataset.from_videos(paths, size, 0 if sources else holdout_episodes)
        sources.append(with_action_space(clips, space))
    if not label_episodes:
        return MixedDataset(sources)
    full = SequenceDataset.from_minari(dataset, holdout_episodes)
    if not 0 < label_episodes <= full.num_episodes:
        raise ValueError(f"--label-episodes {label_episodes} must be in [1, {full.num_episodes}] "
                         f"(training episodes of {dataset!r})")
    labelled = full._subset(0, label_episodes)
    labelled.info = {**full.info, "label_episodes": label_episodes}
    return MixedDataset([*sources, labelled], [*[None] * len(sources), LABELLED_SHARE])
