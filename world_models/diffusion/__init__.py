"""Diffusion family: DIAMOND-style action-conditioned frame diffusion (Alonso et al. 2024,
"Diffusion for World Modeling: Visual Details Matter in Atari", arXiv:2405.12399).

An EDM denoiser (Karras et al. 2022, arXiv:2206.00364) on a stack of K past frames and
actions samples each next frame in a few Euler/Heun steps, in a lossless pixel working space
(``variant="pixel"``, optionally folded or grid-sampled) or a small VAE's latent
(``variant="latent"``); the shared reward predictor gives rewards, terminations and features.
Plugs into `world_models.families` through `FAMILY` (its `make_spec` and `build`).
"""

from __future__ import annotations

from typing import Any, Literal

from world_models.base import ModelSpec
from world_models.diffusion.config import PRESETS, DiffusionConfig
from world_models.diffusion.model import DiffusionWorldModel, check_resolution
from world_models.diffusion.space import working_shape

__all__ = [
    "FAMILY", "PRESETS", "DiffusionConfig", "DiffusionFamily", "DiffusionWorldModel", "build", "make_spec",
]


def _working_shape(frame_shape: tuple[int, int, int], cfg: DiffusionConfig) -> tuple[int, int, int]:
    """(c, h, w) the denoiser works at (ValueError when the frames do not fit the working space)."""
    height, width, _ = frame_shape
    if cfg.variant == "latent":
        factor = 2**cfg.vae_down
        if height % factor or width % factor:
            raise ValueError(f"vae_down {cfg.vae_down} needs frame sides divisible by {factor}, "
                             f"got {height}x{width}")
        return cfg.latent_channels, height // factor, width // factor
    return working_shape(frame_shape, cfg.fold, cfg.native_grid)


def make_spec(
    frame_shape: tuple[int, int, int],
    action_kind: Literal["discrete", "continuous"],
    action_dim: int,
    action_low: tuple[float, ...] | None = None,
    action_high: tuple[float, ...] | None = None,
    preset: str = "small",
    overrides: dict[str, Any] | None = None,
) -> ModelSpec:
    """A `ModelSpec` for a diffusion model at `preset` with `overrides` applied.

    Raises ValueError for unknown presets or keys, and when the working resolution is not
    divisible by 2^(levels - 1) for the U-Net's levels.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown diffusion preset {preset!r}; known presets: {sorted(PRESETS)}")
    cfg = PRESETS[preset].replace(overrides or {})
    spec = ModelSpec(  # checks the frame shape and the action space
        family="diffusion", frame_shape=frame_shape, action_kind=action_kind, action_dim=action_dim,
        action_low=action_low, action_high=action_high, context_len=cfg.context_len,
        feature_dim=cfg.feature_dim, hparams=cfg.to_dict(),
    )
    check_resolution(_working_shape(spec.frame_shape, cfg), len(cfg.channels))
    return spec


def build(spec: ModelSpec) -> DiffusionWorldModel:
    """A freshly initialised `DiffusionWorldModel` for `spec`."""
    if spec.family != "diffusion":
        raise ValueError(f"spec is for family {spec.family!r}, not 'diffusion'")
    return DiffusionWorldModel(spec, DiffusionConfig(**spec.hparams))


class DiffusionFamily:
    """The diffusion family as a `world_models.base.Family`."""

    name = "diffusion"
    presets: tuple[str, ...] = tuple(PRESETS)

    def default_hparams(self, preset: str) -> dict[str, Any]:
        """Hyper-parameters of `preset` (the fields of `DiffusionConfig`)."""
        return PRESETS[preset].to_dict()

    make_spec = staticmethod(make_spec)
    build = staticmethod(build)


FAMILY = DiffusionFamily()
"""The registered diffusion family."""
