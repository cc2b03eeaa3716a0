"""The one imagination rollout loop: step any `WorldModel` H times from a batch of states.

Actions come either from a fixed sequence (open-loop evaluation, planners' candidate plans,
dream videos) or from a policy acting on the model's features (the Dreamer actor). Every
model step draws its randomness from `noise`, so a seeded generator reproduces a rollout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from world_models.base import State, WorldModel
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


@torch.no_grad()
def imagine(
    model: WorldModel,
    state: State,
    policy_or_actions: FeaturePolicy | Tensor,
    horizon: int | None = None,
    noise: Noise | torch.Generator | None = None,
    features: bool = False,
    decode: bool = False,
) -> Imagined:
    """Roll `model` forward from `state` (B rows).

    `policy_or_actions` is a `FeaturePolicy` (then `horizon` is required) or actions
    (B, H, ...) batch first (`horizon` defaults to H and may be shorter). `features` keeps
    the features of every state, `decode` the decoded frame of every new state.
    """
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
