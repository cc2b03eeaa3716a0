"""Maps between a task's real actions and a model's latent actions, fitted from labels.

LAPO (Schmidt & Jiang 2024, "Learning to Act without Actions", arXiv:2312.10812): a latent
action model trained on action-free video yields codes that a few labelled transitions map
to real actions. Here both directions are closed-form statistics of labelled transitions
(real action a, latent code k inferred by the model from the transition's frames), so
fitting is exact, fast and needs no training loop:

- discrete real actions: a count table C[a, k]. real -> latent is argmax_k C[a, k] (the
  code the action most often produces); latent -> real is argmax_a C[a, k];
- continuous real actions: per-code sums and counts. latent -> real is the code's mean
  action; real -> latent is the nearest code mean (in the [-1, 1] scaled action space).

Rows or columns never seen fall back on the most frequent code / action (or the mean). The
statistics are buffers, so they live in the model's weights file and load with it.
`accuracy` is the label probe on labelled transitions (see its docstring).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from world_models.action_input import ActionInput
from world_models.base import ModelSpec


class ActionMap(nn.Module):
    """Real <-> latent action maps from counts of labelled (real action, latent code) pairs."""

    def __init__(self, real_spec: ModelSpec, n_latent: int) -> None:
        super().__init__()
        self.kind, self.n_latent = real_spec.action_kind, int(n_latent)
        rows = real_spec.action_dim if self.kind == "discrete" else 1
        self.real_input = ActionInput(real_spec)
        self.register_buffer("counts", torch.zeros(rows, self.n_latent))  # (R, L)
        self.register_buffer("sums", torch.zeros(self.n_latent, real_spec.action_dim))  # (L, A) raw actions

    @property
    def fitted(self) -> bool:
        """Whether any labelled transition has been counted."""
        return bool(self.counts.sum() > 0)

    def reset(self) -> None:
        """Forget every count."""
        self.counts.zero_()
        self.sums.zero_()

    @torch.no_grad()
    def update(self, actions: Tensor, codes: Tensor, mask: Tensor | None = None) -> None:
        """Count transitions: real actions (M,) int64 or (M, A), latent codes (M,), rows `mask`."""
        codes = codes.reshape(-1).long().to(self.counts.device)
        keep = torch.ones_like(codes, dtype=torch.bool) if mask is None else mask.reshape(-1).to(codes.device)
        codes = codes[keep]
        if self.kind == "discrete":
            real = actions.reshape(-1).long().to(codes.device)[keep]
            inside = (real >= 0) & (real < self.counts.shape[0])  # actions of another space are skipped
            flat = real[inside] * self.n_latent + codes[inside]
            self.counts += torch.bincount(flat, minlength=self.counts.numel()).view_as(self.counts).float()
        else:
            real = actions.reshape(keep.shape[0], -1).to(codes.device)[keep]
            self.counts[0] += torch.bincount(codes, minlength=self.n_latent).float()
            self.sums.index_add_(0, codes, real.float().to(self.sums.device))

    def _code_counts(self) -> Tensor:
        return self.counts.sum(0)  # (L,)

    def to_latent(self, actions: Tensor) -> Tensor:
        """Real actions (B,) int64 or (B, A) -> latent codes (B,) int64."""
        per_code = self._code_counts()
        fallback = int(per_code.argmax())
        if self.kind == "discrete":
            rows = self.counts[actions.long().to(self.counts.device)]  # (B, L)
            codes = rows.argmax(-1)
            return torch.where(rows.sum(-1) > 0, codes, torch.full_like(codes, fallback))
        used = per_code > 0  # (L,)
        if not bool(used.any()):
            return torch.full(actions.shape[:1], fallback, dtype=torch.long, device=self.counts.device)
        means = self.real_input(self.sums / per_code.clamp_min(1)[:, None])  # (L, A) scaled
        x = self.real_input(actions)  # (B, A) scaled
        dist = (x[:, None] - means[None]).square().sum(-1)  # (B, L)
        return torch.where(used[None], dist, float("inf")).argmin(-1)

    def to_real(self, codes: Tensor) -> Tensor:
        """Latent codes (B,) -> real actions (B,) int64 or (B, A) float32."""
        codes = codes.long().to(self.counts.device)
        per_code = self._code_counts()
        if self.kind == "discrete":
            cols = self.counts[:, codes].T  # (B, R)
            common = int(self.counts.sum(1).argmax())
            best = cols.argmax(-1)
            return torch.where(cols.sum(-1) > 0, best, torch.full_like(best, common))
        overall = self.sums.sum(0) / per_code.sum().clamp_min(1)  # (A,)
        means = self.sums / per_code.clamp_min(1)[:, None]  # (L, A)
        means = torch.where(per_code[:, None] > 0, means, overall[None])
        return means[codes]

    @torch.no_grad()
    def accuracy(self, actions: Tensor, codes: Tensor) -> float:
        """Label probe on transitions (real actions, their inferred codes): for discrete
        actions the fraction whose code decodes to their real action (several codes may
        stand for one action); for continuous ones the fraction whose action maps to their
        code."""
        codes = codes.long().to(self.counts.device).reshape(-1)
        if self.kind == "discrete":
            hits = self.to_real(codes) == actions.long().to(self.counts.device).reshape(-1)
        else:
            hits = self.to_latent(actions) == codes
        return float(hits.float().mean()) if hits.numel() else float("nan")


@runtime_checkable
class LatentActionModel(Protocol):
    """A world model with latent actions that `vwm fit-actions` can map to real ones."""

    spec: ModelSpec
    action_map: ActionMap

    def latent_actions(self, frames: Tensor) -> Tensor:
        """Latent codes (B, T) of windows frames (B, T, H, W, C) uint8: code t is the
        transition t-1 -> t (code 0 is meaningless)."""
        ...

    def with_real_actions(self, real_spec: ModelSpec) -> LatentActionModel:
        """A copy of the model whose real action space is `real_spec`'s, native mode "real",
        with an empty action map (other weights shared by value)."""
        ...

    def with_action_mode(self, mode: str) -> LatentActionModel:
        """The same model (shared weights) acting in `mode` ("latent" or "real")."""
        ...


def apply_action_mode(model, contexts, mode: str | None):
    """`model` acting in action `mode` with its start `contexts` (a `ContextBank`) to match.

    None keeps the model's native mode. Models with latent actions (`with_action_mode`)
    switch; any other model has only its real actions, so "real" keeps it and "latent"
    raises ValueError. When the mode's action shape differs from the bank's, the bank's
    actions become zeros of the new shape: such models infer a context's latent actions
    from its frames, and burn-in ignores actions anyway.
    """
    if mode is None:
        return model, contexts
    if mode not in ("latent", "real"):
        raise ValueError(f"action_mode must be 'latent' or 'real', got {mode!r}")
    switch = getattr(model, "with_action_mode", None)
    if switch is None:
        if mode == "latent":
            raise ValueError(f"model family {model.spec.family!r} has no latent actions: only "
                             "action_mode='real' (its native actions)")
        return model, contexts
    model = switch(mode)
    spec = model.spec
    frames, actions = contexts.frames, contexts.actions
    expected = tuple(frames.shape[:2]) + spec.action_shape()
    if tuple(actions.shape) != expected or actions.dtype != spec.action_dtype():
        contexts = type(contexts)(frames=frames, actions=torch.zeros(expected, dtype=spec.action_dtype()))
    return model, contexts
