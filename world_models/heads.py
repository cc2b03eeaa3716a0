"""Prediction heads shared by every model family: symlog two-hot reward and continue flag.

Follows DreamerV3 (Hafner et al. 2023, "Mastering Diverse Domains through World Models",
arXiv:2301.04104): rewards are regressed as a categorical over bins spaced evenly in
symlog space (so exponentially in raw space) with a two-hot target, which is robust to
reward scale; the continue flag is a Bernoulli logit. Output layers of the reward head
start at zero so early predictions are exactly zero.

The maths (`symlog`, `symexp`, `twohot`, `twohot_loss`, `twohot_mean`) are pure functions
on tensors of any leading shape; the heads are thin `nn.Module`s around them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DEFAULT_BINS = 255
"""Number of two-hot bins."""
DEFAULT_LOW = -20.0
"""Lowest bin, in symlog space."""
DEFAULT_HIGH = 20.0
"""Highest bin, in symlog space."""


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of x (B, T) over the True entries of bool mask (B, T); 0 (no gradient) when none.

    The one way losses respect `SequenceBatch` masks. `torch.where`, not ``x * mask``: a
    masked value, even inf or nan, never reaches the result or its gradient.
    """
    return torch.where(mask, x, 0.0).sum() / mask.sum().clamp_min(1).to(x.dtype)


def symlog(x: Tensor) -> Tensor:
    """sign(x) * log(1 + |x|): compresses large magnitudes, identity-like near zero."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: Tensor) -> Tensor:
    """Inverse of `symlog`: sign(x) * (exp(|x|) - 1)."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


def symlog_bins(
    num_bins: int = DEFAULT_BINS,
    low: float = DEFAULT_LOW,
    high: float = DEFAULT_HIGH,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """(K,) bin centres evenly spaced in symlog space (symexp-spaced in raw space)."""
    if num_bins < 2 or not low < high:
        raise ValueError(f"need num_bins >= 2 and low < high, got {num_bins}, {low}, {high}")
    return torch.linspace(low, high, num_bins, device=device, dtype=dtype)


def twohot(x: Tensor, bins: Tensor) -> Tensor:
    """Two-hot encoding of raw values x (...) as (..., K) weights on symlog-space `bins`.

    symlog(x) is split between its two neighbouring bins in proportion to closeness;
    values beyond the outermost bins put all weight on that bin.
    """
    y = symlog(x).clamp(bins[0], bins[-1])  # (...)
    k = bins.shape[0]
    above = torch.searchsorted(bins, y.contiguous(), right=True).clamp(1, k - 1)  # (...)
    below = above - 1  # (...)
    lo, hi = bins[below], bins[above]  # (...)
    w_hi = ((y - lo) / (hi - lo)).clamp(0.0, 1.0)  # (...)
    out = torch.zeros(*y.shape, k, device=y.device, dtype=bins.dtype)  # (..., K)
    out.scatter_(-1, below.unsqueeze(-1), (1.0 - w_hi).unsqueeze(-1).to(bins.dtype))
    out.scatter_add_(-1, above.unsqueeze(-1), w_hi.unsqueeze(-1).to(bins.dtype))
    return out


def twohot_loss(logits: Tensor, target: Tensor, bins: Tensor | None = None) -> Tensor:
    """(...) cross-entropy between logits (..., K) and the two-hot encoding of raw target (...)."""
    if bins is None:
        bins = symlog_bins(logits.shape[-1], device=logits.device, dtype=logits.dtype)
    weights = twohot(target.to(logits.dtype), bins)  # (..., K)
    return -(weights * F.log_softmax(logits, dim=-1)).sum(-1)


def twohot_mean(logits: Tensor, bins: Tensor | None = None) -> Tensor:
    """(...) raw-space prediction: symexp of the expected symlog-space bin under softmax(logits)."""
    if bins is None:
        bins = symlog_bins(logits.shape[-1], device=logits.device, dtype=logits.dtype)
    probs = torch.softmax(logits, dim=-1)  # (..., K)
    return symexp((probs * bins).sum(-1))


def continue_loss(logits: Tensor, terminated: Tensor, mask: Tensor, terminal_weight: float = 1.0) -> Tensor:
    """0-d class-weighted binary cross-entropy of continue logits (B, T) against bool
    `terminated` (B, T), averaged over the True entries of `mask` (B, T).

    Terminal steps weigh `terminal_weight`, the others 1 (BCE's ``pos_weight`` on the
    "end" class): ``sum_i w_i * bce_i / count``. Terminations are rare (one per episode), so
    an unweighted loss is minimised by never predicting one; the minimiser of the weighted
    loss predicts an end (continue probability < 0.5) where ``P(end | features) > 1 / (1 +
    terminal_weight)``. Dividing by the step count, not by the summed weights, keeps the
    normaliser independent of how many ends a batch holds, so data-parallel ranks that
    average their losses give the loss of their joint batch. ``terminal_weight = 1`` is the
    plain masked mean (DreamerV3).
    """
    terminal = terminated.bool()
    weight = torch.where(terminal, terminal_weight, 1.0).to(logits.dtype)  # (B, T)
    bce = F.binary_cross_entropy_with_logits(logits, (~terminal).to(logits.dtype), reduction="none")
    return masked_mean(bce * weight, mask)


def mlp(
    in_dim: int, hidden: int, layers: int, out_dim: int, zero_init: bool = False
) -> nn.Sequential:
    """`layers` x (Linear -> LayerNorm -> SiLU) then a Linear to `out_dim` (zeroed if asked)."""
    modules: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers):
        modules += [nn.Linear(dim, hidden, bias=False), nn.LayerNorm(hidden), nn.SiLU()]
        dim = hidden
    out = nn.Linear(dim, out_dim)
    if zero_init:
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
    modules.append(out)
    return nn.Sequential(*modules)


class RewardHead(nn.Module):
    """MLP from features (B, F) to two-hot logits over symlog bins; zero-initialised output."""

    def __init__(
        self,
        in_dim: int,
        hidden: int = 256,
        layers: int = 1,
        num_bins: int = DEFAULT_BINS,
        low: float = DEFAULT_LOW,
        high: float = DEFAULT_HIGH,
    ) -> None:
        super().__init__()
        self.net = mlp(in_dim, hidden, layers, num_bins, zero_init=True)
        self.register_buffer("bins", symlog_bins(num_bins, low, high), persistent=False)

    def forward(self, features: Tensor) -> Tensor:
        """(..., K) logits."""
        return self.net(features)

    def predict(self, features: Tensor) -> Tensor:
        """(...) expected reward in raw space."""
        return twohot_mean(self.net(features), self.bins)

    def loss(self, features: Tensor, target: Tensor) -> Tensor:
        """(...) two-hot cross-entropy against raw rewards (...)."""
        return twohot_loss(self.net(features), target, self.bins)


class ContinueHead(nn.Module):
    """MLP from features (B, F) to the logit that the episode continues (Bernoulli).

    DreamerV3 zero-initialises only the reward and value outputs, so `zero_init` is off by
    default here; turn it on to start every prediction at probability 0.5 exactly.
    """

    def __init__(self, in_dim: int, hidden: int = 256, layers: int = 1, zero_init: bool = False):
        super().__init__()
        self.net = mlp(in_dim, hidden, layers, 1, zero_init=zero_init)

    def forward(self, features: Tensor) -> Tensor:
        """(...) logits."""
        return self.net(features).squeeze(-1)

    def prob(self, features: Tensor) -> Tensor:
        """(...) probability of continuing."""
        return torch.sigmoid(self.forward(features))

    def loss(self, features: Tensor, target: Tensor) -> Tensor:
        """(...) binary cross-entropy against target (...) in {0, 1} (1 = continues)."""
        return F.binary_cross_entropy_with_logits(
            self.forward(features), target.to(features.dtype), reduction="none"
        )

    def weighted_loss(self, features: Tensor, terminated: Tensor, mask: Tensor,
                      terminal_weight: float = 1.0) -> Tensor:
        """0-d `continue_loss` of the head at features (B, T, F): terminal steps weigh
        `terminal_weight` (class balance)."""
        return continue_loss(self.forward(features), terminated, mask, terminal_weight)
