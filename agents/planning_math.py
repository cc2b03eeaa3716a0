"""The pure maths of the MPC planners: plan returns, CEM/MPPI weights and refits.

A plan is scored (`plan_returns`) as

    sum_t discount^t * (prod_{k<t} c_k) * r_t  +  discount^H * (prod_{k<H} c_k) * V(s_H)

with ``r_t``, ``c_t`` the reward and continue probability predicted after step ``t`` and the
optional bootstrap ``V`` a value of the model's features. The candidates are then weighted:

- Cross-entropy method (`elite_weights`): Rubinstein 1999, "The Cross-Entropy Method for
  Combinatorial and Continuous Optimization"; as an MPC optimiser, PETS (Chua et al. 2018).
- MPPI (`mppi_weights`): Williams et al. 2017, "Information Theoretic MPC for Model-Based
  Reinforcement Learning".

and the sampling distribution is refitted to the weighted candidates: a diagonal Gaussian
(`weighted_gaussian`) for continuous actions, a categorical per time step
(`weighted_categorical`, sampled with `sample_categorical`) for discrete ones. The optimiser
loop itself is `agents.planning.Planner`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from world_models.sampling import Noise, as_noise


def plan_returns(
    rewards: Tensor, continues: Tensor, discount: float, bootstrap: Tensor | None = None
) -> Tensor:
    """Predicted return of each imagined plan.

    rewards, continues: (H, M), received after each of the H steps; bootstrap: (M,) value of
    the last state or None. Reward ``t`` counts with weight ``discount^t * prod_{k<t} c_k``
    (the reward on arriving at a terminal state still counts), the bootstrap with
    ``discount^H * prod_{k<H} c_k``. Returns (M,).
    """
    horizon = rewards.shape[0]
    alive = torch.cumprod(continues, dim=0)  # (H, M): prod_{k<=t} c_k
    alive_before = torch.cat([torch.ones_like(alive[:1]), alive[:-1]], dim=0)  # (H, M)
    powers = discount ** torch.arange(horizon, device=rewards.device, dtype=rewards.dtype)  # (H,)
    total = (powers[:, None] * alive_before * rewards).sum(dim=0)  # (M,)
    if bootstrap is not None:
        total = total + discount**horizon * alive[-1] * bootstrap
    return total


def elite_weights(returns: Tensor, num_elites: int) -> Tensor:
    """CEM weights (B, N): ``1 / num_elites`` on the top-``num_elites`` returns of each row."""
    top = returns.topk(num_elites, dim=-1).indices  # (B, k)
    weights = torch.zeros_like(returns)  # (B, N)
    return weights.scatter_(-1, top, 1.0 / num_elites)


def mppi_weights(returns: Tensor, temperature: float) -> Tensor:
    """MPPI weights (B, N): ``softmax(returns / temperature)`` over the candidates.

    Williams et al. 2017 weight samples by ``exp(-cost / lambda)``; here cost = -return.
    """
    return torch.softmax(returns / temperature, dim=-1)


def weighted_gaussian(actions: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Weighted mean and std of continuous plans: actions (B, N, H, A), weights (B, N) summing
    to one -> mean, std (B, H, A)."""
    w = weights[:, :, None, None]  # (B, N, 1, 1)
    mean = (w * actions).sum(dim=1)  # (B, H, A)
    var = (w * (actions - mean[:, None]) ** 2).sum(dim=1)  # (B, H, A)
    return mean, var.clamp_min(0).sqrt()


def weighted_categorical(actions: Tensor, weights: Tensor, num_actions: int) -> Tensor:
    """Weighted action frequencies of discrete plans: actions (B, N, H) int64, weights (B, N)
    summing to one -> probabilities (B, H, K)."""
    onehot = torch.nn.functional.one_hot(actions, num_actions).to(weights.dtype)  # (B, N, H, K)
    return (weights[:, :, None, None] * onehot).sum(dim=1)  # (B, H, K)


def sample_categorical(probs: Tensor, num: int, noise: Noise | torch.Generator | None) -> Tensor:
    """``num`` inverse-CDF samples per row (`Noise.categorical`): probs (B, H, K) -> int64 (B, num, H)."""
    expanded = probs[:, None].expand(-1, num, -1, -1)  # (B, N, H, K)
    return as_noise(noise).categorical(expanded)
