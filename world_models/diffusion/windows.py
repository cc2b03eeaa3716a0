"""Which frames condition which target in a training window, by the padding rule, batched.

DIAMOND (Alonso et al. 2024, arXiv:2405.12399) predicts frame t from frames t-K..t-1 and
their actions. In a (B, T) `world_models.batch.SequenceBatch` window an episode may start
inside the window (``is_first``); then, as in burn-in (`world_models.base.pad_context`), a
context reaching back before that start repeats the episode's first frame with "no action".
A target trains only if its whole context is known: t >= K, or an episode start at or before
t - 1 (and t itself is not an episode's first frame, which nothing predicts).

Everything here is index arithmetic on (B, T) masks: no loop over rows or targets.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class ContextWindows(NamedTuple):
    """Context layout of every target (b, t) of a window."""

    index: Tensor
    """int64 (B, T, K): time index of the frame in each of the K context slots, oldest first."""
    real_action: Tensor
    """bool (B, T, K): the action that led into that slot's frame is part of the episode (False
    on the repeated first frame of a padded context and on the episode's first frame)."""
    complete: Tensor
    """bool (B, T): the target has a full context and is not an episode's first frame."""


def context_windows(is_first: Tensor, k: int) -> ContextWindows:
    """The context slots of every target of windows with episode starts `is_first` (B, T)."""
    b, t = is_first.shape
    device = is_first.device
    steps = torch.arange(t, device=device)  # (T,)
    start_at = torch.where(is_first.bool(), steps, -1)  # (B, T)
    latest = start_at.cummax(dim=1).values  # (B, T) latest start at or before t
    none = torch.full((b, 1), -1, device=device, dtype=latest.dtype)
    before = torch.cat([none, latest[:, :-1]], 1)  # (B, T) latest start at or before t - 1
    raw = steps[:, None] - k + torch.arange(k, device=device)[None, :]  # (T, K) t-K .. t-1
    index = torch.maximum(raw[None], before[..., None]).clamp_min(0)  # (B, T, K)
    real_action = raw[None] > before[..., None]  # (B, T, K)
    complete = ((steps[None] >= k) | (before >= 0)) & ~is_first.bool()  # (B, T)
    return ContextWindows(index, real_action, complete)


def gather_rows(x: Tensor, rows: Tensor, index: Tensor) -> Tensor:
    """x (B, T, ...) at (rows (N,), index (N, ...)) -> (N, ..., *x.shape[2:])."""
    rows = rows.view(-1, *[1] * (index.ndim - 1)).expand_as(index)
    return x[rows, index]


def pick_per_row(mask: Tensor, count: int, scores: Tensor) -> Tensor:
    """bool (B, T): up to `count` True entries of `mask` per row, those with the highest `scores`
    (uniforms (B, T): a random subset); count <= 0 keeps every entry."""
    if count <= 0 or count >= mask.shape[1]:
        return mask.clone()
    ranked = torch.where(mask, scores, -1.0)  # (B, T)
    top = ranked.topk(count, dim=1).indices  # (B, count)
    chosen = torch.zeros_like(mask)
    chosen.scatter_(1, top, True)
    return chosen & mask
