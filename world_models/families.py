"""Registry of model families: name -> module with `make_spec(...)` and `build(spec)`."""

from __future__ import annotations

import importlib
from typing import Any

from world_models.base import ModelSpec, WorldModel

FAMILIES: dict[str, str] = {"rssm": "world_models.rssm"}
"""Family name -> module path. A family module provides `make_spec` and `build`."""


def _family_module(family: str):
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known families: {sorted(FAMILIES)}")
    return importlib.import_module(FAMILIES[family])


def make_spec(
    family: str,
    frame_shape: tuple[int, int, int],
    action_kind: str,
    action_dim: int,
    action_low: tuple[float, ...] | None = None,
    action_high: tuple[float, ...] | None = None,
    preset: str = "small",
    overrides: dict[str, Any] | None = None,
) -> ModelSpec:
    """A complete `ModelSpec` for `family` at `preset`, hyper-parameters overridden by `overrides`."""
    return _family_module(family).make_spec(
        frame_shape=frame_shape,
        action_kind=action_kind,
        action_dim=action_dim,
        action_low=action_low,
        action_high=action_high,
        preset=preset,
        overrides=overrides or {},
    )


def build_model(spec: ModelSpec) -> WorldModel:
    """A freshly initialised model (an `nn.Module`) for `spec`."""
    return _family_module(spec.family).build(spec)
