"""EDM diffusion maths as pure functions: preconditioning, noise levels, sigma schedule, ODE steps.

Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models"
(arXiv:2206.00364), as used by DIAMOND (Alonso et al. 2024, "Diffusion for World Modeling:
Visual Details Matter in Atari", arXiv:2405.12399):

* preconditioning (EDM Table 1): ``D(x, σ) = c_skip(σ) x + c_out(σ) F(c_in(σ) x, c_noise(σ))``
  with ``c_skip = sd² / (σ² + sd²)``, ``c_out = σ sd / sqrt(σ² + sd²)``,
  ``c_in = 1 / sqrt(σ² + sd²)``, ``c_noise = ln(σ) / 4`` (sd = sigma_data = 0.5);
* training noise levels ``ln σ ~ N(loc, scale²)`` (DIAMOND: loc -0.4, scale 1.2) and the
  network target ``(x0 - c_skip x) / c_out``, whose plain MSE equals EDM's λ(σ)-weighted
  denoising loss;
* offset noise (one extra N(0, 1) per image and channel, times `offset`), without which the
  model cannot move low frequencies (DIAMOND issue 36); DIAMOND then preconditions with the
  effective level ``sqrt(σ² + offset²)`` (`effective_sigma`);
* the sampling schedule ``σ_i = (σmax^(1/ρ) + i/(N-1) (σmin^(1/ρ) - σmax^(1/ρ)))^ρ`` for
  i < N, then 0, and deterministic Euler / Heun steps of the probability-flow ODE
  ``dx/dσ = (x - D(x, σ)) / σ`` (Heun's correction is skipped on the last step, to σ = 0).

Random numbers come in as arguments (already drawn standard normals), so every function here
is deterministic and testable on plain tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

SIGMA_DATA = 0.5
"""Standard deviation of the data in [-1, 1] assumed by the preconditioning (EDM, DIAMOND)."""

Denoiser = Callable[[Tensor, float], Tensor]
"""``D(x, σ)``: noisy sample (B, ...) at noise level σ -> estimate of the clean sample."""


class Preconditioning(NamedTuple):
    """EDM's four scalings at noise level σ (each shaped like σ)."""

    c_skip: Tensor
    c_out: Tensor
    c_in: Tensor
    c_noise: Tensor


def preconditioning(sigma: Tensor, sigma_data: float = SIGMA_DATA) -> Preconditioning:
    """c_skip, c_out, c_in, c_noise of EDM Table 1 at levels `sigma` (any shape, > 0)."""
    var = sigma.square() + sigma_data**2
    return Preconditioning(
        c_skip=sigma_data**2 / var,
        c_out=sigma * sigma_data / var.sqrt(),
        c_in=var.rsqrt(),
        c_noise=sigma.log() / 4.0,
    )


def effective_sigma(sigma: Tensor, offset: float) -> Tensor:
    """Total noise std of a sample noised at `sigma` plus offset noise: sqrt(σ² + offset²)."""
    return (sigma.square() + offset**2).sqrt()


def training_sigma(normal: Tensor, loc: float = -0.4, scale: float = 1.2,
                   low: float = 2e-3, high: float = 20.0) -> Tensor:
    """Log-normal training levels from standard normals: exp(loc + scale n) clipped to [low, high]."""
    return (loc + scale * normal).exp().clamp(low, high)


def add_noise(x0: Tensor, sigma: Tensor, normal: Tensor, offset_normal: Tensor, offset: float) -> Tensor:
    """Noisy sample ``x0 + offset * n_off + σ n`` (EDM forward process with offset noise).

    x0, normal: (B, C, H, W); sigma: (B,); offset_normal: (B, C, 1, 1), one draw per channel.
    """
    return x0 + offset * offset_normal + sigma.view(-1, 1, 1, 1) * normal  # (B, C, H, W)


def network_target(x0: Tensor, noisy: Tensor, pre: Preconditioning) -> Tensor:
    """What F should output so that D = x0: ``(x0 - c_skip x) / c_out``; c_*: (B, 1, 1, 1)."""
    return (x0 - pre.c_skip * noisy) / pre.c_out


def denoised(noisy: Tensor, output: Tensor, pre: Preconditioning) -> Tensor:
    """``D = c_skip x + c_out F`` from the network output F; c_*: broadcastable to x."""
    return pre.c_skip * noisy + pre.c_out * output


def karras_sigmas(
    steps: int, sigma_min: float = 2e-3, sigma_max: float = 5.0, rho: float = 7.0
) -> list[float]:
    """The N = `steps` levels of EDM eq. 5, from σmax down to σmin, then 0 (N + 1 values).

    One step gives [σmax, 0].
    """
    if steps < 1:
        raise ValueError(f"need at least one sampling step, got {steps}")
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    hi, lo = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
    ramp = [i / (steps - 1) for i in range(steps)] if steps > 1 else [0.0]
    return [(hi + r * (lo - hi)) ** rho for r in ramp] + [0.0]


def euler_step(x: Tensor, sigma: float, next_sigma: float, denoise: Denoiser) -> Tensor:
    """One Euler step of ``dx/dσ = (x - D(x, σ)) / σ`` from σ to `next_sigma`."""
    d = (x - denoise(x, sigma)) / sigma
    return x + (next_sigma - sigma) * d


def heun_step(x: Tensor, sigma: float, next_sigma: float, denoise: Denoiser) -> Tensor:
    """One Heun (2nd-order) step; plain Euler when `next_sigma` is 0 (EDM Algorithm 1)."""
    d = (x - denoise(x, sigma)) / sigma
    x_euler = x + (next_sigma - sigma) * d
    if next_sigma == 0:
        return x_euler
    d_next = (x_euler - denoise(x_euler, next_sigma)) / next_sigma
    return x + (next_sigma - sigma) * (d + d_next) / 2


def sample(x: Tensor, sigmas: list[float], denoise: Denoiser, sampler: str = "euler") -> Tensor:
    """Integrate the probability-flow ODE from x at sigmas[0] through the schedule `sigmas`.

    x is the starting noise; DIAMOND starts from N(0, I) unscaled (not σmax N(0, I)), which
    drifts less in long rollouts (its issue 40).
    """
    if sampler not in ("euler", "heun"):
        raise ValueError(f"sampler must be 'euler' or 'heun', got {sampler!r}")
    step = euler_step if sampler == "euler" else heun_step
    for sigma, next_sigma in zip(sigmas[:-1], sigmas[1:], strict=True):
        x = step(x, sigma, next_sigma, denoise)
    return x


def network_evaluations(steps: int, sampler: str) -> int:
    """How many times `sample` calls the denoiser: N for Euler, 2N - 1 for Heun."""
    return steps if sampler == "euler" else 2 * steps - 1


def fourier_frequencies(dim: int, low: float = 0.25, high: float = 16.0) -> Tensor:
    """(dim // 2,) angular frequencies 2π f, f log-spaced in [low, high], for `fourier_features`."""
    if dim < 2 or dim % 2:
        raise ValueError(f"Fourier embedding size must be even and >= 2, got {dim}")
    exps = torch.linspace(math.log(low), math.log(high), dim // 2)
    return 2.0 * math.pi * exps.exp()


def fourier_features(x: Tensor, frequencies: Tensor) -> Tensor:
    """(B,) scalars -> (B, 2F) [cos(ω x), sin(ω x)] (the noise-level embedding of EDM/DIAMOND)."""
    angles = x[:, None] * frequencies[None, :]  # (B, F)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def log_level(sigma: Tensor, floor: float = 2e-3) -> Tensor:
    """``ln(σ + floor) / 4``: c_noise of a level that may be 0 (the context-noise level input;
    a clean context reads as the smallest training level)."""
    return (sigma + floor).log() / 4.0
