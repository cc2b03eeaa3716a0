"""A small convolutional VAE: the working space of the diffusion family's latent variant.

Latent diffusion (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent
Diffusion Models", arXiv:2112.10752): a VAE (Kingma & Welling 2014, arXiv:1312.6114) with a
small KL weight compresses frames by 2^`down` per side (64x64x3 -> 16x16x4 for down = 2);
the denoiser then runs in that latent. As in Stable Diffusion the latent is rescaled to a
fixed spread: a buffer ``latent_std``, measured on the first batch the dynamics stage sees
(0 until then, read as 1), maps latents to std `SIGMA_DATA`, what EDM's preconditioning
assumes. Burn-in and `observe` use the posterior mean, so they are deterministic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from world_models.diffusion.edm import SIGMA_DATA
from world_models.diffusion.space import frames_to_unit, unit_to_frames


def gaussian_kl(mean: Tensor, logvar: Tensor) -> Tensor:
    """Elementwise KL(N(mean, exp(logvar)) || N(0, 1))."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar)


def _groups(channels: int) -> int:
    return max(1, channels // 16)


class LatentSpace(nn.Module):
    """Conv VAE encoder/decoder over uint8 frames with a rescaled latent working space."""

    bounded = False
    """Latents are unbounded (the sampler does not clamp them)."""

    def __init__(self, frame_shape: tuple[int, int, int], latent_channels: int = 4, channels: int = 32,
                 down: int = 2, kl_weight: float = 1e-3) -> None:
        super().__init__()
        height, width, colours = frame_shape
        if height % 2**down or width % 2**down:
            raise ValueError(f"vae_down {down} needs frame sides divisible by {2**down}, "
                             f"got {height}x{width}")
        self.frame_shape = tuple(frame_shape)
        self.shape = (latent_channels, height // 2**down, width // 2**down)
        """(c, h, w) of a working-space map."""
        self.kl_weight = float(kl_weight)
        def norm_act() -> list[nn.Module]:
            return [nn.GroupNorm(_groups(channels), channels), nn.SiLU()]

        enc: list[nn.Module] = [nn.Conv2d(colours, channels, 3, 1, 1)]
        for _ in range(down):
            enc += norm_act() + [nn.Conv2d(channels, channels, 4, 2, 1)]
        enc += norm_act() + [nn.Conv2d(channels, 2 * latent_channels, 3, 1, 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(latent_channels, channels, 3, 1, 1)]
        for _ in range(down):
            dec += norm_act() + [nn.Upsample(scale_factor=2.0), nn.Conv2d(channels, channels, 3, 1, 1)]
        dec += norm_act() + [nn.Conv2d(channels, colours, 3, 1, 1)]
        self.decoder = nn.Sequential(*dec)
        self.register_buffer("latent_std", torch.zeros(()))

    # ----------------------------------------------------------------- VAE maths
    def posterior(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """uint8 (N, H, W, C) -> latent mean and log-variance, (N, c, h, w) each."""
        mean, logvar = self.encoder(frames_to_unit(frames)).chunk(2, dim=1)
        return mean, logvar.clamp(-20.0, 10.0)

    def decode_raw(self, z: Tensor) -> Tensor:
        """Unscaled latent (N, c, h, w) -> pixels (N, C, H, W), nominally in [-1, 1]."""
        return self.decoder(z)

    def loss(self, frames: Tensor, mask: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Reconstruction MSE + kl_weight * KL (both per element) over the frames where `mask`.

        frames uint8 (N, H, W, C), mask bool (N,); the latent is sampled with torch's global
        RNG (training noise, not imagination noise).
        """
        chosen = frames[mask]  # (M, H, W, C)
        if chosen.shape[0] == 0:
            zero = sum(p.sum() * 0.0 for p in self.parameters())
            return zero, {"vae_recon": 0.0, "vae_kl": 0.0}
        mean, logvar = self.posterior(chosen)  # (M, c, h, w) each
        z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
        recon = F.mse_loss(self.decode_raw(z), frames_to_unit(chosen))
        kl = gaussian_kl(mean, logvar).mean()
        return recon + self.kl_weight * kl, {"vae_recon": float(recon.detach()), "vae_kl": float(kl.detach())}

    # ----------------------------------------------------------------- working space
    def scale(self) -> Tensor:
        """Factor from unscaled latents to the working space: SIGMA_DATA / latent_std (1 if unset)."""
        std = self.latent_std
        return torch.where(std > 0, SIGMA_DATA / std.clamp_min(1e-8), torch.ones_like(std))

    @torch.no_grad()
    def calibrate(self, frames: Tensor) -> None:
        """Set ``latent_std`` from the posterior means of frames (N, H, W, C) if still unset."""
        if float(self.latent_std) == 0.0 and frames.shape[0]:
            self.latent_std.fill_(float(self.posterior(frames)[0].std().clamp_min(1e-4)))

    def encode(self, frames: Tensor) -> Tensor:
        """uint8 (N, H, W, C) -> working-space latents (N, c, h, w) (posterior mean, rescaled)."""
        return self.posterior(frames)[0] * self.scale()

    def decode(self, x: Tensor) -> Tensor:
        """Working-space latents (N, c, h, w) -> uint8 frames (N, H, W, C)."""
        return unit_to_frames(self.decode_raw(x / self.scale()))

    def project(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """A generated latent -> (its decoded uint8 frames, their encoding), so imagined frames
        re-enter the context as real frames do."""
        frames = self.decode(x)
        return frames, self.encode(frames)
