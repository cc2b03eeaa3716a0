"""The Dreamer actor: a policy over world-model features (DreamerV3, Hafner et al. 2023).

Discrete actions: a categorical with a 1% uniform mix ("unimix"). Continuous actions: a
Normal with a tanh-bounded mean and a sigmoid-bounded std, sampled by reparameterisation
and clipped to [-1, 1] (the policy space, rescaled to the env's bounds by `Actor.to_env`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from world_models.base import ModelSpec
from world_models.heads import mlp
from world_models.sampling import Noise, as_noise

if TYPE_CHECKING:
    from agents.dreamer import DreamerConfig


def bounded_normal(raw_mean: Tensor, raw_std: Tensor, min_std: float, max_std: float
                   ) -> torch.distributions.Independent:
    """DreamerV3's continuous policy: Normal(tanh(raw_mean), std) with
    ``std = (max_std - min_std) * sigmoid(raw_std + 2) + min_std``; (..., A) -> event (A,).

    The mean lies in (-1, 1) and the std in (min_std, max_std); samples are clipped to
    [-1, 1] when acted on (`Actor.sample`), the density stays the unclipped Normal's.
    """
    std = (max_std - min_std) * torch.sigmoid(raw_std + 2.0) + min_std
    return torch.distributions.Independent(torch.distributions.Normal(torch.tanh(raw_mean), std), 1)


class Actor(nn.Module):
    """Policy over model features: categorical with unimix, or bounded (clipped) Gaussian."""

    def __init__(self, feature_dim: int, spec: ModelSpec, cfg: DreamerConfig) -> None:
        super().__init__()
        self.discrete = spec.action_kind == "discrete"
        self.cfg = cfg
        out = spec.action_dim if self.discrete else 2 * spec.action_dim
        self.net = mlp(feature_dim, cfg.hidden, cfg.layers, out)
        if not self.discrete:
            low = torch.tensor(spec.action_low, dtype=torch.float32)
            high = torch.tensor(spec.action_high, dtype=torch.float32)
            self.register_buffer("low", low)
            self.register_buffer("high", high)

    def distribution(self, features: Tensor) -> torch.distributions.Distribution:
        """The action distribution at features (..., F) (continuous: in [-1, 1] space)."""
        out = self.net(features)
        if self.discrete:
            probs = torch.softmax(out, -1)
            probs = (1 - self.cfg.unimix) * probs + self.cfg.unimix / probs.shape[-1]
            return torch.distributions.Categorical(probs=probs)
        mean, std = out.chunk(2, -1)  # (..., A) each
        return bounded_normal(mean, std, self.cfg.min_std, self.cfg.max_std)

    def sample(self, features: Tensor, noise: Noise | torch.Generator | None) -> Tensor:
        """Sampled policy-space actions (B,) int64 or (B, A) in [-1, 1], drawn from `noise`.

        Continuous samples are reparameterised (``loc + scale * eps``) and clipped to [-1, 1]
        with a straight-through gradient, so dynamics backpropagation reaches the actor.
        """
        dist = self.distribution(features)
        noise = as_noise(noise)
        if self.discrete:
            return noise.categorical(dist.probs)  # (B,) inverse CDF over (B, K)
        base = dist.base_dist
        eps = noise.normal(tuple(base.loc.shape), base.loc.device)  # (B, A)
        raw = base.loc + base.scale * eps  # (B, A)
        return raw + (raw.clamp(-1.0, 1.0) - raw).detach()

    def mode(self, features: Tensor) -> Tensor:
        """The most likely policy-space action."""
        dist = self.distribution(features)
        if self.discrete:
            return dist.probs.argmax(-1)
        return dist.base_dist.loc

    def to_env(self, action: Tensor) -> Tensor:
        """Policy-space action -> the env's action (continuous: rescaled to [low, high])."""
        if self.discrete:
            return action
        scaled = self.low + (action + 1.0) * 0.5 * (self.high - self.low)
        return torch.minimum(torch.maximum(scaled, self.low), self.high)  # no rounding past a bound
