"""Training data: `SequenceBatch` windows sampled from local Minari datasets or raw videos.

Time alignment follows `world_models.base`: ``actions[:, t]`` led into ``frames[:, t]``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


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
