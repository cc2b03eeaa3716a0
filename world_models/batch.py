"""Training batches: `SequenceBatch`, the (B, T) windows every model family trains on.

Time alignment follows `world_models.base`: ``actions[:, t]`` led into ``frames[:, t]``.
An episode of N steps (observations ``o_0..o_N``, actions ``a_0..a_{N-1}``) becomes N + 1
frames::

    frames     = o_0,   o_1,     ..., o_N
    actions    = 0,     a_0,     ..., a_{N-1}
    rewards    = 0,     r_0,     ..., r_{N-1}
    terminated = False, term_0,  ..., term_{N-1}
    is_first   = True,  False,   ..., False

Masks (bool (B, T), design section 4) say what of a window is real:

- ``valid``: the frame is real, not padding after the end of a short episode.
- ``has_action``: ``actions[:, t]`` is a real action: valid, not ``is_first`` and from a
  source with actions. False everywhere for videos and ``--ignore-actions`` data, whose
  action tensors hold zeros of the model's action shape.
- ``has_reward``: ``rewards[:, t]`` and ``terminated[:, t]`` are real: valid and from a
  source with rewards (Minari data, also with ``--ignore-actions``; never videos). On an
  episode's first frame the reward 0 and "not terminal" are real by convention.

Batches come from `world_models.data.SequenceDataset` (or `world_models.sources` mixing
several); `randint` draws window positions from either kind of seeded `Generator`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

Generator = np.random.Generator | torch.Generator
"""Either kind of seeded random generator accepted by the samplers."""


class SequenceBatch(NamedTuple):
    """A batch of (B, T) windows; every field is a torch tensor with batch and time first.

    The three masks may be None on hand-built batches, meaning "all real" (see
    `with_masks`); batches sampled from a dataset always carry them.
    """

    frames: Tensor
    """uint8 (B, T, H, W, C)."""
    actions: Tensor
    """int64 (B, T) for discrete or float32 (B, T, A) for continuous; zero where is_first
    or not has_action."""
    rewards: Tensor
    """float32 (B, T): reward received on arriving at frame t (zero where is_first)."""
    terminated: Tensor
    """bool (B, T): frame t is terminal."""
    is_first: Tensor
    """bool (B, T): frame t starts an episode."""
    valid: Tensor | None = None
    """bool (B, T): frame t is real (False on padding)."""
    has_action: Tensor | None = None
    """bool (B, T): the action leading into frame t is real."""
    has_reward: Tensor | None = None
    """bool (B, T): reward and termination at t are real."""

    def to(self, device: torch.device | str) -> SequenceBatch:
        """The same batch on `device`."""
        return SequenceBatch(*(None if t is None else t.to(device) for t in self))

    def with_masks(self) -> SequenceBatch:
        """This batch with missing masks filled: valid everywhere, actions real except where
        is_first, rewards real everywhere valid."""
        valid = torch.ones_like(self.is_first, dtype=torch.bool) if self.valid is None else self.valid
        has_action = valid & ~self.is_first.bool() if self.has_action is None else self.has_action
        has_reward = valid if self.has_reward is None else self.has_reward
        return self._replace(valid=valid.bool(), has_action=has_action.bool(),
                             has_reward=has_reward.bool())


def randint(generator: Generator, high: int, size: int) -> np.ndarray:
    """(size,) int64 uniform in [0, high) from a numpy or torch generator."""
    if isinstance(generator, np.random.Generator):
        return generator.integers(0, high, size=size, dtype=np.int64)
    if isinstance(generator, torch.Generator):
        return torch.randint(high, (size,), generator=generator).numpy()
    raise TypeError(
        f"generator must be a numpy.random.Generator or torch.Generator, got {type(generator)}"
    )
