"""Configuration of the MPC planners: `PlannerConfig` and its one-line text spec.

`parse_planner_spec` turns ``"cem:horizon=12,candidates=256"`` into a `PlannerConfig`;
`format_planner_spec` is its inverse. The planner itself lives in `agents.planning`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args, get_type_hints

from torch import Tensor

PlannerMethod = Literal["random", "cem", "mppi"]
ValueFn = Callable[[Tensor], Tensor]
"""Maps features (M, F) to bootstrap values (M,)."""


@dataclass
class PlannerConfig:
    """Hyper-parameters of an MPC planner (parse one from text with `parse_planner_spec`)."""

    method: PlannerMethod = "cem"
    """``"random"`` (random shooting), ``"cem"`` (cross-entropy method) or ``"mppi"``."""
    horizon: int = 12
    """Length H of each imagined action sequence."""
    num_candidates: int = 256
    """Action sequences N imagined per env and per iteration."""
    iterations: int = 4
    """Refinement iterations of CEM/MPPI (random shooting always uses one)."""
    elite_fraction: float = 0.1
    """CEM: fraction of the candidates kept as elites (ignored when `num_elites` is set)."""
    num_elites: int | None = None
    """CEM: number of elites; overrides `elite_fraction`."""
    temperature: float = 0.5
    """MPPI: softmax temperature, in units of predicted return (lower = greedier)."""
    discount: float = 0.99
    """Discount of predicted rewards inside the horizon."""
    init_std: float = 1.0
    """Continuous actions: initial (CEM) or fixed (MPPI) sampling std, as a fraction of the
    half-range of the action bounds (of 1 for unbounded actions)."""
    min_std: float = 0.05
    """CEM, continuous: lower bound of the refitted std (same units as `init_std`)."""
    momentum: float = 0.1
    """CEM/MPPI: weight of the previous distribution when refitting (0 = replace it)."""
    warm_start: bool = True
    """CEM/MPPI: start each real step from the previous plan shifted by one step."""
    warm_start_mix: float = 0.5
    """Discrete warm start: weight of the uniform distribution mixed into the shifted plan,
    so a confident previous plan keeps exploring."""
    seed: int = 0
    """Seed of the planner's `torch.Generator` (candidate sampling and model noise)."""

    def __post_init__(self) -> None:
        method = _METHOD_ALIASES.get(str(self.method).lower())
        if method is None:
            raise ValueError(
                f"unknown planner method {self.method!r}; choose one of "
                f"{sorted(set(_METHOD_ALIASES.values()))}"
            )
        self.method = method  # type: ignore[assignment]
        for name in ("horizon", "num_candidates", "iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.elite_fraction <= 1.0:
            raise ValueError(f"elite_fraction must be in (0, 1], got {self.elite_fraction}")
        if self.num_elites is not None and not 1 <= self.num_elites <= self.num_candidates:
            raise ValueError(
                f"num_elites must be in [1, num_candidates={self.num_candidates}], "
                f"got {self.num_elites}"
            )
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if not 0.0 <= self.warm_start_mix <= 1.0:
            raise ValueError(f"warm_start_mix must be in [0, 1], got {self.warm_start_mix}")

    @property
    def elites(self) -> int:
        """The number of CEM elites."""
        if self.num_elites is not None:
            return self.num_elites
        return max(1, min(self.num_candidates, round(self.elite_fraction * self.num_candidates)))

    @property
    def imagined_steps_per_action(self) -> int:
        """Imagined model steps per env and real action: N x H (x iterations for CEM/MPPI)."""
        rounds = 1 if self.method == "random" else self.iterations
        return self.num_candidates * self.horizon * rounds


_METHOD_ALIASES: dict[str, str] = {
    "random": "random", "rs": "random", "random_shooting": "random", "shooting": "random",
    "cem": "cem", "mppi": "mppi",
}
PLANNER_NAMES: frozenset[str] = frozenset(_METHOD_ALIASES) - {"random"}
"""Names that start a planner spec (``random`` alone is the random policy, not a planner)."""

_KEY_ALIASES: dict[str, str] = {
    "candidates": "num_candidates", "n": "num_candidates", "h": "horizon",
    "iters": "iterations", "elites": "num_elites", "temp": "temperature", "gamma": "discount",
}


# ----------------------------------------------------------------------------------- spec text


def parse_planner_spec(spec: str) -> PlannerConfig:
    """``"cem:horizon=12,candidates=256"`` -> `PlannerConfig`.

    The method comes before the colon (``random``/``rs``, ``cem``, ``mppi``); after it, comma
    separated ``key=value`` pairs name `PlannerConfig` fields or the aliases ``candidates``,
    ``n``, ``h``, ``iters``, ``elites``, ``temp``, ``gamma``. Unknown keys raise `ValueError`.
    """
    text = spec.strip()
    method, _, rest = text.partition(":")
    if not method:
        raise ValueError(f"planner spec {spec!r} names no method (e.g. 'cem:horizon=12')")
    hints = get_type_hints(PlannerConfig)
    names = [f.name for f in fields(PlannerConfig)]
    values: dict[str, Any] = {"method": method.strip()}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip().lower()
        if not eq:
            raise ValueError(f"planner spec {spec!r}: expected key=value, got {item!r}")
        key = _KEY_ALIASES.get(key, key)
        if key not in names or key == "method":
            valid = sorted(set(names[1:]) | set(_KEY_ALIASES))
            raise ValueError(
                f"planner spec {spec!r}: unknown key {item.partition('=')[0].strip()!r}; "
                f"valid keys: {', '.join(valid)}"
            )
        values[key] = _parse_value(key, raw.strip(), hints[key], spec)
    return PlannerConfig(**values)


def _parse_value(key: str, raw: str, hint: Any, spec: str) -> Any:
    types = get_args(hint) or (hint,)  # int | None -> (int, NoneType)
    if raw.lower() == "none" and type(None) in types:
        return None
    try:
        if bool in types:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if int in types:
            return int(raw)
        if float in types:
            return float(raw)
    except ValueError:
        raise ValueError(
            f"planner spec {spec!r}: bad value {raw!r} for {key} (expected {hint})"
        ) from None
    return raw


def format_planner_spec(cfg: PlannerConfig) -> str:
    """Inverse of `parse_planner_spec`: ``method:key=value,...`` with non-default fields only."""
    default = PlannerConfig(method=cfg.method)
    items = [
        f"{f.name}={getattr(cfg, f.name)}"
        for f in fields(PlannerConfig)
        if f.name != "method" and getattr(cfg, f.name) != getattr(default, f.name)
    ]
    return f"{cfg.method}:{','.join(items)}" if items else str(cfg.method)
