"""RSSM family (DreamerV3 recipe, Hafner et al. 2023, arXiv:2301.04104): the fast workhorse.

Plugs into `world_models.families` through `FAMILY` (its `make_spec` and `build`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from world_models.base import ModelSpec
from world_models.rssm.config import PRESETS, RSSMConfig
from world_models.rssm.model import RSSMWorldModel
from world_models.rssm.networks import conv_stages

__all__ = ["FAMILY", "PRESETS", "RSSMConfig", "RSSMFamily", "RSSMWorldModel", "build", "make_spec"]


def make_spec(
    frame_shape: tuple[int, int, int],
    action_kind: Literal["discrete", "continuous"],
    action_dim: int,
    action_low: tuple[float, ...] | None = None,
    action_high: tuple[float, ...] | None = None,
    preset: str = "small",
    overrides: dict[str, Any] | None = None,
) -> ModelSpec:
    """A `ModelSpec` for an RSSM at `preset` with `overrides` applied (unknown keys: ValueError)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown RSSM preset {preset!r}; known presets: {sorted(PRESETS)}")
    cfg = PRESETS[preset].replace(overrides or {})
    spec = ModelSpec(  # checks the frame shape and the action space
        family="rssm", frame_shape=frame_shape, action_kind=action_kind, action_dim=action_dim,
        action_low=action_low, action_high=action_high, context_len=cfg.context_len,
        feature_dim=cfg.feature_dim, hparams=asdict(cfg),
    )
    conv_stages(spec.frame_shape[0], spec.frame_shape[1], cfg.min_res)  # validates the frame size
    return spec


def build(spec: ModelSpec) -> RSSMWorldModel:
    """A freshly initialised `RSSMWorldModel` for `spec`."""
    if spec.family != "rssm":
        raise ValueError(f"spec is for family {spec.family!r}, not 'rssm'")
    return RSSMWorldModel(spec, RSSMConfig(**spec.hparams))


class RSSMFamily:
    """The RSSM as a `world_models.base.Family`."""

    name = "rssm"
    presets: tuple[str, ...] = tuple(PRESETS)

    def default_hparams(self, preset: str) -> dict[str, Any]:
        """Hyper-parameters of `preset` (the fields of `RSSMConfig`)."""
        return asdict(PRESETS[preset])

    make_spec = staticmethod(make_spec)
    build = staticmethod(build)


FAMILY = RSSMFamily()
"""The registered RSSM family."""
