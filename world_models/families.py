"""Registry of model families (`world_models.base.Family`): name -> family.

Built-in families are registered by module path and imported on first use; a module path
names a module whose ``FAMILY`` attribute is the `Family` (or which provides ``build`` and
the rest at module level). Other code, tests included, registers a `Family` object with
`register_family`. `make_spec` validates presets and overrides here, for every family.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal

from world_models.base import PRESET_NAMES, Family, ModelSpec, WorldModel

FAMILIES: dict[str, Family | str] = {
    "diffusion": "world_models.diffusion",
    "genie": "world_models.genie",
    "overlay": "world_models.overlay",
    "rssm": "world_models.rssm",
}
"""Family name -> `Family`, or the path of a module providing it (imported lazily)."""


def register_family(family: Family, replace: bool = False) -> Family:
    """Register `family` under ``family.name``; ValueError if taken (unless `replace`)."""
    if not isinstance(family, Family):
        raise TypeError(f"{family!r} does not implement the Family protocol (world_models.base.Family)")
    missing = sorted(set(PRESET_NAMES) - set(family.presets))
    if missing:
        raise ValueError(f"model family {family.name!r} lacks the presets {missing}")
    if family.name in FAMILIES and not replace:
        raise ValueError(f"model family {family.name!r} is already registered")
    FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> None:
    """Remove family `name` from the registry (no error if absent)."""
    FAMILIES.pop(name, None)


def family_names() -> list[str]:
    """Sorted names of the registered families."""
    return sorted(FAMILIES)


def describe_families() -> str:
    """One line per registered family with its presets (for ``--help``)."""
    lines = [f"  {name}: presets {', '.join(get_family(name).presets)}" for name in family_names()]
    return "model families (--family):\n" + "\n".join(lines)


def get_family(name: str) -> Family:
    """The registered family `name` (ValueError naming the known families otherwise)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; known families: {family_names()}")
    entry = FAMILIES[name]
    if isinstance(entry, str):
        module = importlib.import_module(entry)
        return getattr(module, "FAMILY", module)  # type: ignore[return-value]
    return entry


def make_spec(
    family: str,
    frame_shape: tuple[int, int, int],
    action_kind: Literal["discrete", "continuous"] | str,
    action_dim: int,
    action_low: tuple[float, ...] | None = None,
    action_high: tuple[float, ...] | None = None,
    preset: str = "small",
    overrides: dict[str, Any] | None = None,
) -> ModelSpec:
    """A complete `ModelSpec` for `family` at `preset`, hyper-parameters overridden by `overrides`.

    Unknown presets or override keys raise a ValueError naming them and the family.
    """
    fam = get_family(family)
    if preset not in fam.presets:
        raise ValueError(
            f"unknown preset {preset!r} for model family {family!r}; presets: {list(fam.presets)}"
        )
    overrides = dict(overrides or {})
    valid = sorted(fam.default_hparams(preset))
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown hyper-parameters {unknown} for model family {family!r}; valid keys: {valid}"
        )
    defaults = fam.default_hparams(preset)
    for key, value in overrides.items():
        if not _same_kind(value, defaults[key]):
            raise ValueError(
                f"hyper-parameter {key!r} of model family {family!r} must be of type "
                f"{type(defaults[key]).__name__} like its default {defaults[key]!r}, got {value!r:.80}"
            )
    spec = fam.make_spec(
        frame_shape=tuple(int(v) for v in frame_shape),  # type: ignore[arg-type]
        action_kind=action_kind,  # type: ignore[arg-type]
        action_dim=int(action_dim),
        action_low=action_low,
        action_high=action_high,
        preset=preset,
        overrides=overrides,
    )
    if spec.family != family:
        raise ValueError(f"family {family!r} made a spec for family {spec.family!r}")
    return spec


def _same_kind(value: Any, default: Any) -> bool:
    """Whether an override `value` has the JSON kind of the hyper-parameter's `default`."""
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def build_model(spec: ModelSpec) -> WorldModel:
    """A freshly initialised model (an `nn.Module`) for `spec`.

    Hyper-parameters the family cannot build with (a negative width, a size its layers do not
    divide) raise a ValueError naming the family, not an error from inside its layers.
    """
    family = get_family(spec.family)
    try:
        return family.build(spec)
    except (RuntimeError, ValueError, TypeError, AssertionError, ZeroDivisionError, KeyError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(
            f"cannot build a {spec.family!r} model from its hyper-parameters ({first:.200})"
        ) from error
