"""Hyper-parameters of the diffusion family and its named presets.

Defaults follow DIAMOND (Alonso et al. 2024, "Diffusion for World Modeling: Visual Details
Matter in Atari", arXiv:2405.12399) and EDM (Karras et al. 2022, arXiv:2206.00364) except
for the sizes, which are picked for two CPU cores (DESIGN section 10): the small preset
denoises 64x64 frames folded losslessly to 32x32x12 with one Euler step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from world_models.reward_predictor import RewardPredictorConfig


@dataclass(frozen=True)
class DiffusionConfig:
    """Diffusion world-model hyper-parameters; every field is JSON-serialisable."""

    variant: str = "pixel"
    """"pixel": denoise (folded or grid-sampled) pixels; "latent": denoise in the latent
    space of a small VAE trained first (stage "autoencoder", then stage "dynamics")."""
    fold: int = 1
    """Pixel variant: pixel-unshuffle factor f, (H, W, C) -> (H/f, W/f, C f²); lossless,
    so thin objects (a CartPole pole) survive while the U-Net runs at a lower resolution."""
    native_grid: int = 0
    """Pixel variant: G > 0 denoises a G x G image holding one pixel per cell of a block
    image (MinAtar drawn at 64x64: G = 10) and decodes by nearest upscaling; 0: off."""
    context_len: int = 4
    """K: past frames (and actions) the denoiser is conditioned on (copied to the ModelSpec)."""
    channels: tuple[int, ...] = (32, 64, 64)
    """U-Net channels per resolution level; the working resolution halves between levels."""
    blocks: int = 1
    """Residual blocks per U-Net level, on the way down and on the way up."""
    cond_dim: int = 128
    """Size of the conditioning vector (noise level, actions, context-noise level) that
    drives every adaptive group norm."""
    fourier_dim: int = 64
    """Size of the Fourier embedding of a noise level (even)."""
    sampler: str = "euler"
    """ODE solver when imagining: "euler" (DIAMOND) or "heun"."""
    sampling_steps: int = 1
    """Denoising steps per imagined frame (1 to 5; DIAMOND uses 3)."""
    sigma_min: float = 2e-3
    """Smallest noise level of the sampling schedule."""
    sigma_max: float = 5.0
    """Largest noise level of the sampling schedule (the start noise is N(0, I), unscaled)."""
    rho: float = 7.0
    """Curvature of the Karras schedule."""
    sigma_loc: float = -0.4
    """Mean of ln σ of training noise levels (DIAMOND)."""
    sigma_scale: float = 1.2
    """Std of ln σ of training noise levels (DIAMOND)."""
    offset_noise: float = 0.3
    """Std of the per-channel offset noise added in training (DIAMOND: 0.3)."""
    context_noise_prob: float = 0.5
    """Fraction of training targets whose context frames are noised (context noise
    augmentation, as in DIAMOND's CS:GO model and GameNGen); the level is fed to the network
    and sampling uses clean contexts (level 0). DIAMOND's CS:GO model noises every context
    (offset noise included); here the other targets train on clean contexts, the level
    imagination uses."""
    context_noise_max: float = 1.0
    """Largest context-noise level; levels are drawn like training levels, then clipped
    (DIAMOND clips at 20, which on [-1, 1] frames erases the context)."""
    rollout_weight: float = 0.5
    """Weight of the extra loss on targets whose newest context frame is the model's own
    one-step prediction (robustness to its own imperfect frames)."""
    targets_per_row: int = 0
    """Targets trained per window row, drawn at random among those with a full context
    (0: all of them); caps the cost of long windows."""
    reward_scale: float = 1.0
    """Weight of the reward predictor's loss."""
    predictor_lr: float = 1e-3
    """Learning rate of the reward predictor (0: the run's --lr, like the denoiser)."""
    ema_decay: float = 0.999
    """Decay of the EMA weights the trainer keeps and imagination uses (0: none)."""
    latent_channels: int = 4
    """Latent variant: channels of the VAE latent."""
    vae_channels: int = 32
    """Latent variant: channels of the VAE's conv layers."""
    vae_down: int = 2
    """Latent variant: stride-2 stages of the VAE encoder (64x64 -> 16x16 for 2)."""
    kl_weight: float = 1e-3
    """Latent variant: weight of the VAE's KL term (per latent element, against the
    per-pixel reconstruction MSE)."""
    vae_steps: int = 2000
    """Latent variant: steps of the "autoencoder" stage before the "dynamics" stage."""
    predictor: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Overrides of `world_models.reward_predictor.RewardPredictorConfig`."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "predictor", dict(self.predictor))
        if self.variant not in ("pixel", "latent"):
            raise ValueError(f"variant must be 'pixel' or 'latent', got {self.variant!r}")
        if self.sampler not in ("euler", "heun"):
            raise ValueError(f"sampler must be 'euler' or 'heun', got {self.sampler!r}")
        if not 1 <= self.sampling_steps <= 5:
            raise ValueError(f"sampling_steps must be in 1..5, got {self.sampling_steps}")
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels must be a non-empty list of sizes >= 1, got {self.channels}")
        if self.fourier_dim < 2 or self.fourier_dim % 2:
            raise ValueError(f"fourier_dim must be even and >= 2, got {self.fourier_dim}")
        if self.fold > 1 and self.native_grid:
            raise ValueError("fold and native_grid are exclusive (pick one working space)")
        if self.variant == "latent" and (self.fold > 1 or self.native_grid):
            raise ValueError("fold and native_grid apply to the pixel variant only")
        for name in ("fold", "context_len", "blocks", "cond_dim", "latent_channels", "vae_channels",
                     "vae_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("native_grid", "targets_per_row", "vae_down", "offset_noise", "rollout_weight",
                     "kl_weight", "reward_scale", "predictor_lr"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.context_noise_prob <= 1.0:
            raise ValueError(f"context_noise_prob must be in [0, 1], got {self.context_noise_prob}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0 < self.sigma_min <= self.sigma_max:
            raise ValueError(f"need 0 < sigma_min <= sigma_max, got {self.sigma_min}, {self.sigma_max}")
        RewardPredictorConfig.from_dict(self.predictor)  # validates its keys

    @property
    def predictor_config(self) -> RewardPredictorConfig:
        """The reward predictor's config (defaults with `predictor` applied)."""
        return RewardPredictorConfig.from_dict(self.predictor)

    @property
    def feature_dim(self) -> int:
        """Length of `features(state)`: the reward predictor's hidden size."""
        return self.predictor_config.hidden

    def replace(self, overrides: dict[str, Any]) -> DiffusionConfig:
        """A copy with `overrides` applied; unknown keys raise ValueError."""
        valid = [f.name for f in fields(self)]
        unknown = sorted(set(overrides) - set(valid))
        if unknown:
            raise ValueError(f"unknown diffusion hyper-parameters {unknown}; valid keys: {valid}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples become lists)."""
        data = dataclasses.asdict(self)
        data["channels"] = list(self.channels)
        return data


PRESETS: dict[str, DiffusionConfig] = {
    # Trains in seconds at 16x16; for tests. A short EMA so that tests see it move.
    "tiny": DiffusionConfig(
        channels=(8, 16), cond_dim=32, fourier_dim=16, ema_decay=0.9, vae_channels=8, vae_down=1,
        vae_steps=2, latent_channels=2,
        predictor={"hidden": 32, "depth": 8, "image_size": 0, "embed": 32, "head_hidden": 32},
    ),
    # CPU default: 64x64 folded to 32x32x12, one Euler step per imagined frame.
    "small": DiffusionConfig(fold=2, channels=(32, 64, 64), targets_per_row=4),
    # GPU: DIAMOND's U-Net shape (64 channels at 4 levels, 2 blocks), 3 Euler steps.
    "medium": DiffusionConfig(
        channels=(64, 64, 64, 64), blocks=2, cond_dim=256, sampling_steps=3, targets_per_row=8,
        predictor={"hidden": 256, "depth": 32, "image_size": 0, "embed": 512, "head_hidden": 256},
    ),
}
"""Named presets."""
