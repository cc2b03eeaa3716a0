"""DreamerV3 return maths as pure functions with explicit hyper-parameters.

Reference: Hafner et al. 2023, "Mastering Diverse Domains through World Models" (DreamerV3):
lambda-returns (eq. 7) and return normalisation by an EMA of the 5th-95th percentile range
(section "Robust predictions" / "Critic learning", ``Moments`` in the official code).

Time alignment follows `world_models.base`: ``rewards[t]`` and ``continues[t]`` are received
*after* the step taken from state ``t`` (on arriving at state ``t + 1``), and
``values[t]`` is the critic's value of state ``t``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def lambda_returns(
    rewards: Tensor, values: Tensor, continues: Tensor, discount: float, lambda_: float
) -> Tensor:
    """TD(lambda) returns of an imagined trajectory (DreamerV3 eq. 7).

    Shapes: rewards (T, B), values (T + 1, B), continues (T, B) -> returns (T, B).

    ``rewards[t]`` and ``continues[t]`` (a probability or 0/1 flag that the episode goes on
    after the state reached) are received after the step from state ``t`` to ``t + 1``;
    ``values[t]`` estimates the return from state ``t``, so ``values[T]`` bootstraps the tail::

        R_t = r_t + discount * c_t * ((1 - lambda_) * V_{t+1} + lambda_ * R_{t+1}),  R_T = V_T

    ``lambda_ = 1`` gives the discounted Monte-Carlo return bootstrapped with ``V_T``;
    ``lambda_ = 0`` the one-step TD target ``r_t + discount * c_t * V_{t+1}``.
    """
    if rewards.shape != continues.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)} and continues "
                         f"{tuple(continues.shape)} must have the same shape (T, B)")
    if values.shape[0] != rewards.shape[0] + 1 or values.shape[1:] != rewards.shape[1:]:
        raise ValueError(f"values must be (T + 1, B) = {(rewards.shape[0] + 1,) + tuple(rewards.shape[1:])}, "
                         f"got {tuple(values.shape)}")
    horizon = rewards.shape[0]
    # the part of each target that does not depend on later returns
    bootstrap = rewards + discount * continues * (1.0 - lambda_) * values[1:]  # (T, B)
    out = torch.empty_like(rewards)  # (T, B)
    running = values[-1]  # (B,)
    for t in reversed(range(horizon)):
        running = bootstrap[t] + discount * continues[t] * lambda_ * running  # (B,)
        out[t] = running
    return out


def percentile_scale(
    returns: Tensor, low: float = 0.05, high: float = 0.95, min_scale: float = 1.0
) -> Tensor:
    """``max(min_scale, P_high(returns) - P_low(returns))`` over all elements (DreamerV3).

    This is the per-batch statistic; `ReturnNormalizer` smooths its two percentiles with an EMA.
    Returns a 0-d tensor.
    """
    flat = returns.detach().float().reshape(-1)  # (N,)
    lo, hi = torch.quantile(flat, torch.tensor([low, high], device=flat.device))
    return torch.clamp(hi - lo, min=min_scale)


class ReturnNormalizer:
    """EMA of the 5th and 95th return percentiles; scale = max(1, P95 - P5) (DreamerV3).

    DreamerV3 divides advantages ``(R - V)`` by `scale`, which shrinks large returns but never
    amplifies small ones. As in the official code the two EMAs start at zero and carry no bias
    correction.
    """

    def __init__(
        self,
        decay: float = 0.99,
        low: float = 0.05,
        high: float = 0.95,
        min_scale: float = 1.0,
    ) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"need 0 <= low < high <= 1, got low={low}, high={high}")
        self.decay, self.low_q, self.high_q, self.min_scale = decay, low, high, min_scale
        self.low = torch.zeros(())
        """EMA of the low percentile."""
        self.high = torch.zeros(())
        """EMA of the high percentile."""

    def update(self, returns: Tensor) -> Tensor:
        """Fold one batch of returns into the EMAs and return the new scale (0-d tensor)."""
        flat = returns.detach().float().reshape(-1).cpu()  # (N,)
        lo, hi = torch.quantile(flat, torch.tensor([self.low_q, self.high_q]))
        self.low = self.decay * self.low + (1.0 - self.decay) * lo
        self.high = self.decay * self.high + (1.0 - self.decay) * hi
        return self.scale

    @property
    def scale(self) -> Tensor:
        """``max(min_scale, high - low)`` as a 0-d tensor."""
        return torch.clamp(self.high - self.low, min=self.min_scale)

    def normalize(self, advantages: Tensor) -> Tensor:
        """``advantages / scale`` (on the advantages' device)."""
        return advantages / self.scale.to(advantages.device)

    def state(self) -> dict[str, float]:
        """JSON-serialisable EMA state, saved with an agent."""
        return {"low": float(self.low), "high": float(self.high)}

    def load_state(self, state: dict[str, float]) -> None:
        """Inverse of `state`."""
        self.low = torch.tensor(float(state["low"]))
        self.high = torch.tensor(float(state["high"]))
