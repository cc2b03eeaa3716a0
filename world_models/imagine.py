"""The one imagination rollout loop: step any `WorldModel` H times from a batch of states.

Actions come either from a fixed sequence (open-loop evaluation, planners' candidate plans,
dream videos) or from a policy acting on the model's features (the Dreamer actor). Every
model step draws its randomness from `noise`, so a seeded generator reproduces a rollout.

`imagine_from_frames` is the frames-in, video-out form for users (the seed project's
``imagine(obs, action_sequence)``): numpy or torch real frames in, an imagined video and
its rewards out, for any family; `burn_in_frames` is its burn-in, shared with
`agents.planning.plan_action`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from world_models.base import State, WorldModel, burn_in, state_batch_size
from world_models.sampling import Noise

FeaturePolicy = Callable[[Tensor], tuple[Tensor, Tensor]]
"""features (B, F) -> (the action to record, the action handed to ``model.step``); the two
differ when a policy acts in its own space (e.g. [-1, 1]) and rescales for the env."""


class Imagined(NamedTuple):
    """A batched imagined rollout of H steps from B start rows, time first."""

    actions: Tensor
    """(H, B) or (H, B, A): the recorded actions (a policy's own, or the given sequence)."""
    rewards: Tensor
    """(H, B) reward predicted on arriving at s_1..s_H."""
    continues: Tensor
    """(H, B) probability that the episode continues after s_1..s_H."""
    features: Tensor | None
    """(H + 1, B, F) features of s_0..s_H when asked for (always with a policy), else None."""
    frames: Tensor | None
    """uint8 (H, B, H_img, W_img, C) decoded frames of s_1..s_H when asked for, else None."""
    state: State
    """The final state s_H."""


def imagine(
    model: WorldModel,
    state: State,
    policy_or_actions: FeaturePolicy | Tensor,
    horizon: int | None = None,
    noise: Noise | torch.Generator | None = None,
    features: bool = False,
    decode: bool = False,
    grad: bool = False,
) -> Imagined:
    """Roll `model` forward from `state` (B rows).

    `policy_or_actions` is a `FeaturePolicy` (then `horizon` is required) or actions
    (B, H, ...) batch first (`horizon` defaults to H and may be shorter). `features` keeps
    the features of every state, `decode` the decoded frame of every new state. Without
    `grad` the rollout runs under ``torch.no_grad``; with it, gradients flow from rewards and
    features back to the policy's actions through the model's dynamics (DreamerV3's
    dynamics backpropagation for continuous actions).
    """
    with torch.set_grad_enabled(grad):
        return _imagine(model, state, policy_or_actions, horizon, noise, features, decode)


def _imagine(
    model: WorldModel,
    state: State,
    policy_or_actions: FeaturePolicy | Tensor,
    horizon: int | None,
    noise: Noise | torch.Generator | None,
    features: bool,
    decode: bool,
) -> Imagined:
    is_policy = callable(policy_or_actions) and not isinstance(policy_or_actions, Tensor)
    if horizon is None:
        if is_policy:
            raise ValueError("imagine: a policy needs an explicit horizon")
        horizon = int(policy_or_actions.shape[1])  # type: ignore[union-attr]
    keep_features = features or is_policy
    feats = [model.features(state)] if keep_features else []
    actions, rewards, continues, frames = [], [], [], []
    for t in range(horizon):
        if is_policy:
            recorded, action = policy_or_actions(feats[-1])  # type: ignore[operator]
        else:
            recorded = action = policy_or_actions[:, t]  # type: ignore[index]
        transition = model.step(state, action, noise)
        state = transition.state
        actions.append(recorded)
        rewards.append(transition.reward.float())  # (B,)
        continues.append(transition.cont_prob.float())  # (B,)
        if keep_features:
            feats.append(model.features(state))
        if decode:
            frames.append(model.decode(state))
    return Imagined(
        torch.stack(actions),
        torch.stack(rewards),
        torch.stack(continues),
        torch.stack(feats) if features or is_policy else None,
        torch.stack(frames) if decode else None,
        state,
    )


# ----------------------------------------------------------------------- frames in, video out


def _model_device(model: WorldModel) -> torch.device:
    return next(model.parameters()).device


def burn_in_frames(
    model: WorldModel, obs: np.ndarray | Tensor, context_actions: np.ndarray | Tensor | None = None
) -> tuple[State, bool]:
    """The model state after real frames that begin an episode; also whether `obs` was batched.

    `obs` is uint8 numpy or torch: one frame (H, W, C), a context (T, H, W, C) or a batch of
    contexts (B, T, H, W, C) (a batch of single frames is (B, 1, H, W, C)). The first
    ``spec.context_len`` frames are burned in (`world_models.base.burn_in`) and any later
    ones folded in with ``observe`` (prefix consistency makes this the same state).
    `context_actions` (T,) / (T, A), or (B, T) / (B, T, A) for a batch, led into each frame
    (the first is ignored); default zeros, right for a single frame only.
    """
    device = _model_device(model)
    spec = model.spec
    frames = torch.as_tensor(np.asarray(obs) if not isinstance(obs, Tensor) else obs, device=device)
    if frames.ndim not in (3, 4, 5) or tuple(frames.shape[-3:]) != tuple(spec.frame_shape):
        raise ValueError(f"obs must be a frame {spec.frame_shape}, a context (T, *frame) or a batch "
                         f"(B, T, *frame), got shape {tuple(frames.shape)}")
    batched = frames.ndim == 5
    frames = frames.reshape((-1,) + tuple(frames.shape[-4:]) if frames.ndim > 3 else (1, 1, *frames.shape))
    batch, length = frames.shape[:2]  # frames (B, T, H, W, C)
    if context_actions is None:
        actions = torch.zeros((batch, length) + spec.action_shape(), dtype=spec.action_dtype(), device=device)
    else:
        actions = _as_actions(model, context_actions, batched)
        if tuple(actions.shape[:2]) != (batch, length):
            raise ValueError(f"context_actions must have one action per context frame "
                             f"({batch}, {length}), got shape {tuple(actions.shape)}")
    k = min(length, spec.context_len)
    state = burn_in(model, frames[:, :k], actions[:, :k])
    for t in range(k, length):
        state = model.observe(state, frames[:, t], actions[:, t])
    return state, batched


def _as_actions(model: WorldModel, actions: Any, batched: bool) -> Tensor:
    """Actions (T[, A]) or, batched, (B, T[, A]) -> (B, T[, A]) in the spec's dtype."""
    spec = model.spec
    out = torch.as_tensor(np.asarray(actions) if not isinstance(actions, Tensor) else actions,
                          device=_model_device(model)).to(spec.action_dtype())
    if not batched:
        out = out[None]
    if out.ndim != 2 + len(spec.action_shape()) or tuple(out.shape[2:]) != spec.action_shape():
        shape = ("(B, T)" if batched else "(T,)") if spec.action_kind == "discrete" else \
            ("(B, T, A)" if batched else "(T, A)")
        raise ValueError(f"actions must have shape {shape} with A = {spec.action_dim} "
                         f"({spec.action_kind}), got {tuple(np.shape(actions))}")
    return out


class ImaginedVideo(NamedTuple):
    """An imagined video and its rewards, in the type (numpy or torch) of the frames given."""

    video: Any
    """uint8 (B, T, H, W, C), or (T, H, W, C) for unbatched frames: the frames after each action."""
    rewards: Any
    """float32 (B, T) or (T,): the reward predicted on arriving at each frame."""


@torch.inference_mode()
def imagine_from_frames(
    model: WorldModel,
    obs: np.ndarray | Tensor,
    action_sequence: np.ndarray | Tensor,
    seed: int = 0,
    context_actions: np.ndarray | Tensor | None = None,
) -> ImaginedVideo:
    """Burn `model` in on real frames and imagine the video of `action_sequence`, open loop.

    `obs` and `context_actions` as in `burn_in_frames`; `action_sequence` (T,) / (T, A), or
    (B, T) / (B, T, A) for a batch of contexts. All sampling is drawn from a generator seeded
    with `seed`, so the same call gives the same video. Numpy frames give numpy outputs,
    torch frames torch tensors on the model's device.
    """
    state, batched = burn_in_frames(model, obs, context_actions)
    actions = _as_actions(model, action_sequence, batched)  # (B, T[, A])
    if actions.shape[0] != state_batch_size(state):
        raise ValueError(f"{state_batch_size(state)} contexts but {actions.shape[0]} action sequences")
    generator = torch.Generator(device=_model_device(model)).manual_seed(seed)
    out = imagine(model, state, actions, noise=generator, decode=True)
    video, rewards = out.frames.transpose(0, 1), out.rewards.T  # type: ignore[union-attr]  # (B, T, ...)
    if not batched:
        video, rewards = video[0], rewards[0]
    if not isinstance(obs, Tensor):
        video, rewards = video.cpu().numpy(), rewards.cpu().numpy()
    return ImaginedVideo(video, rewards)
