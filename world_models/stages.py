"""Training stages: what a family trains when, at which learning rate, and what stays frozen.

A family may define ``training_stages(self) -> Sequence[Stage]`` on its model; without it
the trainer runs `default_stages`: one stage over every parameter. Stages run in order;
stage i starts when the steps of stages 0..i-1 are done, and the last stage runs until the
run's ``--steps``, whatever its own `Stage.steps`. During a stage only the parameters its
groups select are trained (each by its own Adam optimiser state); every other parameter is
frozen (``requires_grad`` off, never stepped). Learning rates warm up linearly from
``lr / warmup`` to ``lr`` over the stage's first `Stage.warmup` steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class ParamGroup:
    """Parameters selected by name prefix, optimised with their own learning rate."""

    prefixes: tuple[str, ...] = ("",)
    """Parameter-name prefixes (as in ``named_parameters()``, e.g. "encoder."); "" selects all."""
    lr: float | None = None
    """Learning rate of this group (None: the stage's)."""


@dataclass(frozen=True)
class Stage:
    """One phase of training."""

    name: str = "all"
    """Short name, recorded in checkpoints (the trainer state lists the stage names)."""
    steps: int | None = None
    """Gradient steps of this stage (None, and ignored, for the last stage: it runs to the end)."""
    groups: tuple[ParamGroup, ...] = (ParamGroup(),)
    """Trained parameter groups; a parameter belongs to the first group that selects it.
    Parameters no group selects are frozen during the stage."""
    lr: float | None = None
    """Learning rate of the stage's groups (None: the run's ``--lr``)."""
    warmup: int | None = None
    """Linear learning-rate warm-up steps at the start of the stage (None: the run's ``--warmup``)."""
    grad_clip: float | None = None
    """Global gradient-norm clip of the stage (None: the run's ``--grad-clip``)."""


def default_stages() -> list[Stage]:
    """One stage training every parameter at the run's learning rate."""
    return [Stage()]


def model_stages(model: nn.Module) -> list[Stage]:
    """The stages `model` declares through ``training_stages()``, else `default_stages`."""
    declare = getattr(model, "training_stages", None)
    stages = list(declare()) if callable(declare) else default_stages()
    if not stages:
        raise ValueError(f"{type(model).__name__}.training_stages() returned no stage")
    for stage in stages[:-1]:
        if stage.steps is None or stage.steps < 1:
            raise ValueError(f"stage {stage.name!r} needs steps >= 1 (only the last may omit them)")
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ValueError(f"stage names must be unique, got {names}")
    return stages


def stage_at(stages: Sequence[Stage], step: int) -> tuple[int, int]:
    """(stage index, steps already done inside it) at global step `step`."""
    start = 0
    for index, stage in enumerate(stages):
        if index == len(stages) - 1 or step < start + int(stage.steps or 0):
            return index, step - start
        start += int(stage.steps or 0)
    raise AssertionError("unreachable")


def select_parameters(
    model: nn.Module, stage: Stage
) -> list[tuple[ParamGroup, list[tuple[str, nn.Parameter]]]]:
    """Each group of `stage` with the named parameters it trains (first matching group wins).

    Raises ValueError when a group selects nothing.
    """
    taken: set[str] = set()
    out = []
    for group in stage.groups:
        chosen = [
            (name, p) for name, p in model.named_parameters()
            if name not in taken and any(name.startswith(prefix) for prefix in group.prefixes)
        ]
        if not chosen:
            raise ValueError(f"stage {stage.name!r}: no parameter matches prefixes {group.prefixes}")
        taken.update(name for name, _ in chosen)
        out.append((group, chosen))
    return out


def warmup_factor(step_in_stage: int, warmup: int) -> float:
    """Learning-rate multiplier on the stage's step `step_in_stage` (0-based): linear warm-up."""
    if warmup <= 0:
        return 1.0
    return min(1.0, (step_in_stage + 1) / warmup)
