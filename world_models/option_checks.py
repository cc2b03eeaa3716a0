"""Range checks of command options, run before a command reads or writes anything.

Argparse checks an option's type (``--steps abc``); `check_ranges` checks its value
(``--steps -5``), naming the option as the command line spells it, so a bad value is a one-line
error rather than a run that silently does nothing, divides by zero or leaves a half-made folder.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any


def option_name(field: str) -> str:
    """The command-line spelling of a config field: ``num_envs`` -> ``--num-envs``."""
    return "--" + field.replace("_", "-")


def check_ranges(cfg: Any, at_least: Mapping[str, float] = (), positive: Iterable[str] = ()) -> None:
    """ValueError unless each field in `at_least` is >= its minimum and each in `positive` is a
    finite number > 0 (fields of `cfg`, a config dataclass)."""
    for field, low in dict(at_least).items():
        value = getattr(cfg, field)
        if not value >= low:  # NaN fails too
            raise ValueError(f"{option_name(field)} must be >= {low}, got {value}")
    for field in positive:
        value = getattr(cfg, field)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{option_name(field)} must be a positive number, got {value}")


__all__ = ["check_ranges", "option_name"]
