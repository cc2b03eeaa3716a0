"""Actions as network inputs, shared by every family: one-hot or scaled vectors, zero = none.

Discrete actions become one-hot vectors (a real action is never all zero, so the zero
vector is the "no action" input of an episode's first frame and of action-free data);
continuous actions are mapped from their finite bounds to [-1, 1] (`action_affine`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from world_models.base import ModelSpec


def action_affine(spec: ModelSpec) -> tuple[Tensor, Tensor]:
    """(center, scale) mapping finite continuous action bounds to [-1, 1]; identity otherwise."""
    dim = spec.action_dim if spec.action_kind == "continuous" else 1
    center, scale = torch.zeros(dim), torch.ones(dim)
    if spec.action_kind == "continuous" and spec.action_low is not None and spec.action_high is not None:
        low = torch.tensor(spec.action_low, dtype=torch.float32).expand(dim)
        high = torch.tensor(spec.action_high, dtype=torch.float32).expand(dim)
        finite = torch.isfinite(low) & torch.isfinite(high) & (high > low)
        center = torch.where(finite, (high + low) / 2, center)
        scale = torch.where(finite, (high - low) / 2, scale)
    return center, scale


class ActionInput(nn.Module):
    """Actions (*lead) int64 or (*lead, A) float -> float32 (*lead, A) network inputs."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.kind, self.dim = spec.action_kind, spec.action_dim
        center, scale = action_affine(spec)
        self.register_buffer("center", center, persistent=False)
        self.register_buffer("scale", scale, persistent=False)

    def forward(self, action: Tensor, known: Tensor | None = None) -> Tensor:
        """Encode `action`; where bool `known` (*lead) is False the input is all zero."""
        device = self.center.device
        if self.kind == "discrete":
            # no range check here (a host sync on every imagined step): envs validate actions
            # at their boundary (video_envs.validation), and one_hot rejects bad indices
            out = F.one_hot(action.to(device).long(), self.dim).float()  # (*lead, A)
        else:
            action = action.to(device=device, dtype=torch.float32)
            if action.shape[-1:] != (self.dim,):
                raise ValueError(f"continuous actions must end in ({self.dim},), got {tuple(action.shape)}")
            out = (action - self.center) / self.scale  # (*lead, A)
        if known is not None:
            out = torch.where(known.to(device)[..., None], out, 0.0)
        return out
