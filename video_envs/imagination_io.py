"""What goes into and out of the imagination core: loading, Gymnasium spaces, validation.

- Loading: `load_source` resolves a checkpoint (or a model and its start contexts) into an
  `ImaginationSource`; `as_context_bank` and `task_time_limit` help it.
- Spaces: `action_space_from_spec`, `pixel_space`, `latent_space` build the imagined env's
  spaces from a model's spec; `check_real_spaces` checks a real env against it.
- Validation: `validate_context` checks an explicit start context and converts it to the
  batched tensors the core takes; actions are checked by `video_envs.validation`'s
  `validate_actions` (re-exported here), shared with the real tasks.

The core itself (`ImaginationCore`, its seeding scheme) lives in `video_envs.imagination_core`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from video_envs.validation import validate_actions as validate_actions  # re-exported
from world_models.action_map import apply_action_mode
from world_models.base import ModelSpec, WorldModel
from world_models.checkpoint import CheckpointError, ContextBank, load_checkpoint

DEFAULT_MAX_EPISODE_STEPS = 1000
"""Time limit used when neither the caller nor the checkpoint's task gives one."""


# ------------------------------------------------------------------ loading / spaces
class ImaginationSource(NamedTuple):
    """A model with its start contexts, the real task it was trained on and the number of
    real steps one model step stands for (an online run's action repeat; 1 otherwise)."""

    model: WorldModel
    contexts: ContextBank
    task: str | None
    action_repeat: int = 1


def as_context_bank(contexts: ContextBank | tuple[Any, Any]) -> ContextBank:
    """A `ContextBank` from a bank or a ``(frames (N,T,H,W,C), actions (N,T[,A]))`` pair."""
    if isinstance(contexts, ContextBank):
        return contexts
    frames, actions = contexts
    return ContextBank(
        frames=torch.as_tensor(np.asarray(frames)), actions=torch.as_tensor(np.asarray(actions))
    )


def load_source(
    checkpoint: str | Path | None = None,
    model: WorldModel | None = None,
    contexts: ContextBank | tuple[Any, Any] | None = None,
    task: str | None = None,
    device: str | torch.device = "cpu",
    action_mode: str | None = None,
) -> ImaginationSource:
    """Resolve the constructor arguments shared by all front ends into a source.

    Either `checkpoint` (a folder) or `model` (+ `contexts`) must be given. A `task` that
    differs from the checkpoint's raises `CheckpointError`. `action_mode` ("latent" or
    "real"; None: the checkpoint's native mode) picks the action space of a model with
    latent actions (`world_models.action_map.apply_action_mode`).
    """
    if (checkpoint is None) == (model is None):
        raise ValueError("pass exactly one of checkpoint=PATH or model=WorldModel")
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint, device=device, expect_task=task)
        bank = ckpt.contexts if contexts is None else as_context_bank(contexts)
        model, ckpt_task = ckpt.model, ckpt.task
        repeat = int(ckpt.config.get("action_repeat", 1))
    else:
        if contexts is None:
            raise ValueError("model= needs contexts= (a ContextBank or a (frames, actions) pair)")
        bank, ckpt_task, repeat = as_context_bank(contexts), task, 1
    assert model is not None
    model, bank = apply_action_mode(model, bank, action_mode)
    if len(bank) == 0:
        raise CheckpointError("the context bank is empty: an imagined env needs start contexts")
    frame_shape = tuple(bank.frames.shape[2:])
    if frame_shape != tuple(model.spec.frame_shape):
        raise CheckpointError(
            f"context frames have shape {frame_shape}, the model expects {model.spec.frame_shape}"
        )
    return ImaginationSource(model, bank, ckpt_task if ckpt_task is not None else task, repeat)


def task_time_limit(task: str | None, action_repeat: int = 1) -> int:
    """``max_episode_steps`` of the real task `task` (registered by `video_envs`), else 1000,
    in model steps: a model that steps `action_repeat` real steps at once gets
    ``ceil(limit / action_repeat)``, as `video_envs.wrappers.ActionRepeat` ends the real task."""
    return -(-_real_time_limit(task) // max(1, action_repeat))


def _real_time_limit(task: str | None) -> int:
    if task is None:
        return DEFAULT_MAX_EPISODE_STEPS
    import video_envs  # noqa: F401  (registers the real tasks)

    try:
        limit = gym.spec(task).max_episode_steps
    except gym.error.Error:
        return DEFAULT_MAX_EPISODE_STEPS
    return int(limit) if limit is not None else DEFAULT_MAX_EPISODE_STEPS


def action_space_from_spec(spec: ModelSpec) -> spaces.Space:
    """The single-env action space of a model: Discrete(n) or Box(low, high, (A,))."""
    if spec.action_kind == "discrete":
        return spaces.Discrete(spec.action_dim)
    low = np.asarray(spec.action_low if spec.action_low is not None else [-1.0] * spec.action_dim)
    high = np.asarray(spec.action_high if spec.action_high is not None else [1.0] * spec.action_dim)
    return spaces.Box(low.astype(np.float32), high.astype(np.float32), (spec.action_dim,), np.float32)


def pixel_space(spec: ModelSpec) -> spaces.Box:
    """uint8 frames, the same Box as the real task."""
    return spaces.Box(0, 255, tuple(spec.frame_shape), np.uint8)


def latent_space(feature_dim: int) -> spaces.Box:
    """float32 features of length `feature_dim`."""
    return spaces.Box(-np.inf, np.inf, (feature_dim,), np.float32)


def check_real_spaces(spec: ModelSpec, observation_space: spaces.Space, action_space: spaces.Space) -> None:
    """Raise `CheckpointError` when a real env's spaces do not match the model's spec."""
    expected_obs = pixel_space(spec)
    if (
        not isinstance(observation_space, spaces.Box)
        or observation_space.shape != expected_obs.shape
        or observation_space.dtype != np.uint8
    ):
        raise CheckpointError(
            f"the real env observes {observation_space}, the model expects uint8 frames {spec.frame_shape}"
        )
    expected_act = action_space_from_spec(spec)
    same = (
        isinstance(action_space, spaces.Discrete)
        and isinstance(expected_act, spaces.Discrete)
        and int(action_space.n) == int(expected_act.n)
    ) or (
        isinstance(action_space, spaces.Box)
        and isinstance(expected_act, spaces.Box)
        and action_space.shape == expected_act.shape
    )
    if not same:
        raise CheckpointError(f"the real env acts in {action_space}, the model expects {expected_act}")


# ------------------------------------------------------------------ validation
def validate_context(context: Any, spec: ModelSpec, rows: int | None) -> tuple[Tensor, Tensor]:
    """An explicit start context ``{"frames": ..., "actions": ...}`` as batched tensors.

    Single env (`rows` None): frames uint8 (T, H, W, C) with 1 <= T <= context_len, actions
    (T,) or (T, A), optional (zeros); the context begins an episode (`world_models.base`).
    Vector env: the same with a leading `rows` dimension per row, or unbatched (broadcast).
    Returns frames (R, T, H, W, C) uint8 and actions (R, T[, A]) with R = rows or 1.
    """
    if not isinstance(context, dict) or "frames" not in context:
        raise ValueError('options["context"] must be a dict {"frames": uint8 (T, H, W, C), "actions": ...}')
    frames = np.asarray(context["frames"])
    single = (-1, *spec.frame_shape)
    if frames.dtype != np.uint8:
        raise ValueError(f"context frames must be uint8, got {frames.dtype}")
    if frames.ndim == 4 and frames.shape[1:] == tuple(spec.frame_shape):
        frames = frames[None]
        broadcast = True
    elif (
        rows is not None
        and frames.ndim == 5
        and frames.shape[0] == rows
        and frames.shape[2:] == tuple(spec.frame_shape)
    ):
        broadcast = False
    else:
        expected = "(T, H, W, C)" + ("" if rows is None else f" or ({rows}, T, H, W, C)")
        raise ValueError(
            f"context frames must have shape {expected} with (H, W, C) = {spec.frame_shape}, "
            f"got {frames.shape} (single frame shape {single[1:]})"
        )
    n, t = frames.shape[:2]
    if not 1 <= t <= spec.context_len:
        raise ValueError(f"a context needs 1 to context_len = {spec.context_len} frames, got {t}")
    act_shape = spec.action_shape()
    actions = context.get("actions")
    if actions is None:
        actions = np.zeros((n, t) + act_shape)
    else:
        actions = np.asarray(actions)
        if broadcast:
            actions = actions[None]
        if actions.shape != (n, t) + act_shape:
            expected = ((t,) if broadcast else (n, t)) + act_shape
            got = actions.shape[1:] if broadcast else actions.shape
            raise ValueError(f"context actions must have shape {expected} to match the frames, got {got}")
        if spec.action_kind == "discrete" and actions.dtype.kind not in "iu":
            raise ValueError(f"context actions must be integers for a discrete model, got {actions.dtype}")
    frames_t = torch.from_numpy(np.ascontiguousarray(frames))
    actions_t = torch.from_numpy(np.ascontiguousarray(actions)).to(spec.action_dtype())
    return frames_t, actions_t
