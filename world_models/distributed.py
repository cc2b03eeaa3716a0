"""Data-parallel world-model training under ``torchrun`` with PyTorch DistributedDataParallel.

``torchrun --nproc_per_node N vwm train-model ...`` (or ``python -m torch.distributed.run``)
starts N ranks of the same command; `init_distributed` joins them into one process group
from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``):
gloo on the CPU, NCCL on CUDA, where rank r runs on ``cuda:LOCAL_RANK``. Without torchrun
(or with one rank) nothing changes: the context is rank 0 of 1 and no group is made.

- **Sampling.** Every rank samples its own ``--batch-size`` windows, so the global batch is
  ``batch_size x N``. The windows of step s on rank r come from a generator seeded with
  (seed, s, r) (`window_rng`), and the loss's own randomness (posterior samples, diffusion
  noise, MaskGIT masks) from a torch seed derived the same way (`loss_seed`). Sampling is
  stateless: a resumed run draws exactly what the uninterrupted one would have, on every
  rank, and one process reproduces the global batch by concatenating the ranks' draws.
- **Gradients.** A `LossForward` module (its ``forward`` is the model's ``compute_loss``,
  since families expose a loss rather than a ``forward``) is wrapped in DDP, which
  broadcasts rank 0's weights when it is built and averages gradients in buckets while the
  backward pass runs. DDP rather than a hand-written all-reduce after ``backward``: the
  overlap of communication with computation, the bucketing and the initial broadcast come
  from the engine, and the trainer stays family-generic. ``find_unused_parameters`` is on
  because a family's stages freeze parts of the model and action-free batches leave the
  action and reward heads without a gradient (DDP warns once per rank when a family turns
  out to use every parameter); the trainer builds one wrapper per stage (after freezing),
  so DDP only reduces what the stage trains.
- **Side effects.** Rank 0 alone writes checkpoints, TensorBoard logs and the progress bar
  and runs the evaluation; every rank reads the same checkpoint when resuming, so the
  optimisers and weights agree, and rank-independent decisions (stopping on
  ``--max-seconds``, a non-finite loss on any rank) are agreed through the group.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from world_models.base import WorldModel
from world_models.batch import SequenceBatch


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a data-parallel run."""

    rank: int = 0
    """Global rank (0 writes checkpoints and logs)."""
    world_size: int = 1
    """Number of ranks."""
    local_rank: int = 0
    """Rank on this machine (the CUDA device index under NCCL)."""

    @property
    def enabled(self) -> bool:
        """Whether a process group with more than one rank is in use."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this rank writes checkpoints, logs and the progress bar."""
        return self.rank == 0


SINGLE = DistContext()
"""The context of an ordinary single-process run."""


def launched_by_torchrun() -> bool:
    """Whether torchrun started this process as one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_rank_zero() -> bool:
    """True unless torchrun started this process as a rank other than 0 (``RANK`` env var);
    usable before the process group exists (e.g. to take a run folder's lock once)."""
    return int(os.environ.get("RANK", "0")) == 0


def current_context() -> DistContext:
    """This process's place in the process group it joined (`SINGLE` when none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join torchrun's process group (once per process); returns the context and the device
    this rank trains on (``cuda:LOCAL_RANK`` under NCCL, else `device`).

    A single process gets `SINGLE` and `device` unchanged.
    """
    if not launched_by_torchrun():
        return SINGLE, device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return current_context(), device


def shutdown_distributed() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def window_rng(seed: int, step: int, rank: int = 0) -> np.random.Generator:
    """The generator the windows of gradient step `step` on `rank` are sampled with."""
    return np.random.default_rng([seed, step, rank])


def loss_seed(seed: int, step: int, rank: int = 0) -> int:
    """The torch seed of the loss's own randomness at gradient step `step` on `rank`."""
    return int(np.random.SeedSequence([seed, step, rank, 1]).generate_state(1)[0])


class LossForward(nn.Module):
    """``forward(batch, step)`` is ``model.compute_loss(batch, step)``: what DDP wraps."""

    def __init__(self, model: WorldModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: SequenceBatch, step: int) -> tuple[Tensor, dict[str, float]]:
        """(loss, metrics) of the wrapped model on `batch`."""
        return self.model.compute_loss(batch, step)


def wrap_ddp(model: WorldModel, device: torch.device) -> nn.Module:
    """`model`'s loss as a DDP module over the parameters that require gradients now."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return DistributedDataParallel(LossForward(model), device_ids=ids, find_unused_parameters=True)


def _flag(flag: bool) -> Tensor:
    """`flag` as a one-element tensor on the device the group's backend communicates from."""
    return torch.tensor([float(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")


def any_rank(flag: bool, context: DistContext) -> bool:
    """True on every rank when `flag` is true on at least one."""
    if not context.enabled:
        return bool(flag)
    value = _flag(flag)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def rank_zero_decides(flag: bool, context: DistContext) -> bool:
    """Rank 0's `flag`, on every rank (for decisions taken from a clock)."""
    if not context.enabled:
        return bool(flag)
    value = _flag(flag)
    dist.broadcast(value, src=0)
    return bool(value.item() > 0)


def barrier(context: DistContext) -> None:
    """Wait for every rank (nothing in a single process)."""
    if context.enabled:
        dist.barrier()


@contextmanager
def rank_zero_first(context: DistContext) -> Iterator[None]:
    """Run the block on rank 0 first, then on the others (e.g. building an on-disk cache)."""
    if not context.is_main:
        barrier(context)
    try:
        yield
    finally:
        if context.is_main:
            barrier(context)


__all__ = ["SINGLE", "DistContext", "LossForward", "any_rank", "barrier", "current_context",
           "init_distributed", "launched_by_torchrun", "loss_seed", "rank_zero_decides",
           "rank_zero_first", "shutdown_distributed", "window_rng", "wrap_ddp"]
