"""Genie family (Bruce et al. 2024, arXiv:2402.15391): a world model learned from video.

FSQ tokenizer, latent action model and MaskGIT dynamics (`world_models.genie.model`). Plugs
into `world_models.families` through `FAMILY`. The spec's action space depends on the
action mode (hparam ``action_mode``): ``latent`` gives Discrete(n_latent) (the default for
action-free data, whose placeholder action space is discrete:1), ``real`` the real task's
actions through a fitted real-to-latent map (the default when the data has an action
space; pass ``--overrides '{"action_mode": "latent"}'`` for ``--ignore-actions`` data).
With ``dynamics_actions`` "real" the dynamics is conditioned on the data's real discrete
actions instead (the oracle of latent-action controllability; action mode "real").
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from world_models.base import ModelSpec
from world_models.genie.config import ACTION_MODES, PRESETS, GenieConfig
from world_models.genie.model import GenieWorldModel, build_spec

__all__ = ["ACTION_MODES", "FAMILY", "GenieConfig", "GenieFamily", "GenieWorldModel", "PRESETS",
           "build", "make_spec"]


def make_spec(
    frame_shape: tuple[int, int, int],
    action_kind: Literal["discrete", "continuous"],
    action_dim: int,
    action_low: tuple[float, ...] | None = None,
    action_high: tuple[float, ...] | None = None,
    preset: str = "small",
    overrides: dict[str, Any] | None = None,
) -> ModelSpec:
    """A `ModelSpec` for a Genie model at `preset`: the data's action space is stored as the
    real action space (``hparams["real_action"]``) and ``action_mode`` "auto" is resolved."""
    if preset not in PRESETS:
        raise ValueError(f"unknown genie preset {preset!r}; known presets: {sorted(PRESETS)}")
    if action_kind not in ("discrete", "continuous"):
        raise ValueError(f"action_kind must be 'discrete' or 'continuous', got {action_kind!r}")
    frame_shape = tuple(int(v) for v in frame_shape)  # type: ignore[assignment]
    cfg = PRESETS[preset].replace(overrides or {})
    cfg.validate(frame_shape)
    real = {"kind": action_kind, "dim": int(action_dim),
            "low": None if action_low is None else [float(v) for v in action_low],
            "high": None if action_high is None else [float(v) for v in action_high]}
    mode = cfg.action_mode
    if cfg.dynamics_actions == "real":
        if action_kind != "discrete" or int(action_dim) < 2:
            what = "continuous" if action_kind == "continuous" else f"discrete:{int(action_dim)}"
            raise ValueError(f"genie dynamics_actions='real' needs data with discrete actions "
                             f"(at least 2), got {what} (action-free data is discrete:1)")
        mode = "real"
    if mode == "auto":
        mode = "latent" if (action_kind == "discrete" and int(action_dim) == 1) else "real"
    return build_spec("genie", frame_shape, real, cfg.replace({"action_mode": mode}), mode)


def build(spec: ModelSpec) -> GenieWorldModel:
    """A freshly initialised `GenieWorldModel` for `spec`."""
    if spec.family != "genie":
        raise ValueError(f"spec is for family {spec.family!r}, not 'genie'")
    return GenieWorldModel(spec)


class GenieFamily:
    """The Genie model as a `world_models.base.Family`."""

    name = "genie"
    presets: tuple[str, ...] = tuple(PRESETS)

    def default_hparams(self, preset: str) -> dict[str, Any]:
        """Hyper-parameters of `preset` (the fields of `GenieConfig`)."""
        return asdict(PRESETS[preset])

    make_spec = staticmethod(make_spec)
    build = staticmethod(build)


FAMILY = GenieFamily()
"""The registered Genie family."""
