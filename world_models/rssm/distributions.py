"""Pure functions on the RSSM's categorical latents: unimix, fast sampling, KL balancing.

DreamerV3 (Hafner et al. 2023, arXiv:2301.04104): latents are groups of categoricals whose
probabilities are mixed with 1% uniform; the prior is trained by the dynamics KL and the
encoder by a smaller representation KL, each clipped below at `free_nats` (free bits).
All tensors are (..., G, K): G categorical variables with K classes each.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from world_models.sampling import Noise, as_noise

_TINY = 1e-12


def unimix_probs(logits: Tensor, unimix: float) -> Tensor:
    """(..., G, K) probabilities: (1 - unimix) * softmax(logits) + unimix / K."""
    probs = torch.softmax(logits, dim=-1)  # (..., G, K)
    if unimix > 0.0:
        probs = (1.0 - unimix) * probs + unimix / logits.shape[-1]
    return probs


def sample_index(probs: Tensor, noise: Noise | torch.Generator | None = None) -> Tensor:
    """(..., G) int64 class indices drawn by inverse CDF (`Noise.categorical`)."""
    return as_noise(noise).categorical(probs)


def straight_through(onehot: Tensor, probs: Tensor) -> Tensor:
    """onehot in the forward pass, gradient of probs in the backward pass."""
    if probs.requires_grad:
        return onehot + (probs - probs.detach())  # exactly onehot in the forward pass
    return onehot


def sample_onehot(probs: Tensor, noise: Noise | torch.Generator | None = None) -> Tensor:
    """(..., G, K) one-hot sample with straight-through gradients."""
    index = sample_index(probs, noise)  # (..., G)
    onehot = F.one_hot(index, probs.shape[-1]).to(probs.dtype)  # (..., G, K)
    return straight_through(onehot, probs)


def mode_onehot(probs: Tensor) -> Tensor:
    """(..., G, K) one-hot of the most likely class, with straight-through gradients."""
    onehot = F.one_hot(probs.argmax(dim=-1), probs.shape[-1]).to(probs.dtype)
    return straight_through(onehot, probs)


def categorical_kl(p: Tensor, q: Tensor) -> Tensor:
    """(...) KL(p || q) of probabilities (..., G, K), summed over the G variables."""
    log_p = torch.log(p.clamp_min(_TINY))
    log_q = torch.log(q.clamp_min(_TINY))
    return (p * (log_p - log_q)).sum(dim=(-2, -1))


def categorical_entropy(p: Tensor) -> Tensor:
    """(...) entropy of probabilities (..., G, K), summed over the G variables."""
    return -(p * torch.log(p.clamp_min(_TINY))).sum(dim=(-2, -1))


def free_bits(kl: Tensor, free_nats: float) -> Tensor:
    """max(kl, free_nats): below the threshold the loss is constant, so gives no gradient."""
    return torch.clamp(kl, min=free_nats)


def kl_balance(
    post: Tensor, prior: Tensor, free_nats: float, dyn_scale: float, rep_scale: float
) -> tuple[Tensor, Tensor, Tensor]:
    """KL balancing with free bits on posterior/prior probabilities (..., G, K).

    Returns (loss (...), dyn_kl (...), rep_kl (...)) where
    loss = dyn_scale * max(free, KL(sg(post) || prior))
         + rep_scale * max(free, KL(post || sg(prior))).
    dyn_kl and rep_kl are the unclipped values (equal in the forward pass).
    """
    dyn_kl = categorical_kl(post.detach(), prior)  # (...) trains the prior
    rep_kl = categorical_kl(post, prior.detach())  # (...) trains the posterior / encoder
    loss = dyn_scale * free_bits(dyn_kl, free_nats) + rep_scale * free_bits(rep_kl, free_nats)
    return loss, dyn_kl, rep_kl
