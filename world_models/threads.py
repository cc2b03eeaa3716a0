"""A fixed torch thread count for a block of work: float reductions, and so whole RL runs,
depend on it, so a command that promises reproducible results pins it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` torch intra-op threads (0: torch's default), then restore."""
    if count < 0:
        raise ValueError(f"--threads must be >= 0 (0: torch's default), got {count}")
    before = torch.get_num_threads()
    if count > 0:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
