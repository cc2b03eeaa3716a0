"""A hand-written world model with known dynamics and reward, for testing envs, agents, planners.

The state is a position x in [-1, 1] drawn as a bright column. Discrete actions
{0, 1, 2} move x by (a - 1) * speed; a continuous action a in [-1, 1] moves it by a * speed.
The reward is ``1 - |x - target|`` so the optimum is to move to `target` and stay; the
episode ends (continue probability 0) when |x| reaches `wall`. Optional Gaussian noise
drawn from the step's `noise` makes determinism under a seed testable.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from world_models.base import ModelSpec, State, Transition
from world_models.data import SequenceBatch
from world_models.sampling import Noise, as_noise


def synthetic_spec(
    action_kind: str = "discrete", size: int = 64, context_len: int = 2
) -> ModelSpec:
    """Spec of a `SyntheticWorldModel`."""
    continuous = action_kind == "continuous"
    return ModelSpec(
        family="synthetic",
        frame_shape=(size, size, 3),
        action_kind=action_kind,  # type: ignore[arg-type]
        action_dim=1 if continuous else 3,
        action_low=(-1.0,) if continuous else None,
        action_high=(1.0,) if continuous else None,
        context_len=context_len,
        feature_dim=2,
    )


class SyntheticWorldModel(nn.Module):
    """Known 1-D dynamics implementing the `WorldModel` protocol."""

    def __init__(
        self,
        spec: ModelSpec | None = None,
        target: float = 0.5,
        speed: float = 0.1,
        noise: float = 0.0,
        wall: float = 1.0,
    ) -> None:
        super().__init__()
        self.spec = spec or synthetic_spec()
        self.target, self.speed, self.noise, self.wall = target, speed, noise, wall
        self.dummy = nn.Parameter(torch.zeros(1))

    def _frame_to_pos(self, frames: Tensor) -> Tensor:
        # frames (B, H, W, C) uint8 -> (B,) position of the brightest column
        width = frames.shape[2]
        column = frames.float().mean(dim=(1, 3)).argmax(dim=1).float()  # (B,)
        return column / (width - 1) * 2 - 1

    def init_state(self, frames: Tensor, actions: Tensor) -> State:
        # the context begins an episode (base.py's padding rule): t counts frames since its first
        pos = self._frame_to_pos(frames[:, -1])
        return {"pos": pos.unsqueeze(1), "t": torch.full_like(pos, frames.shape[1] - 1).unsqueeze(1)}

    def _delta(self, action: Tensor) -> Tensor:
        if self.spec.action_kind == "discrete":
            return (action.float() - 1.0) * self.speed  # (B,)
        return action.float().reshape(action.shape[0], -1)[:, 0].clamp(-1, 1) * self.speed

    def step(self, state: State, action: Tensor, noise: Noise | torch.Generator | None = None) -> Transition:
        pos = state["pos"][:, 0] + self._delta(action)  # (B,)
        if self.noise:
            eps = as_noise(noise).normal(tuple(pos.shape), pos.device)
            pos = pos + self.noise * eps
        pos = pos.clamp(-self.wall, self.wall)
        reward = 1.0 - (pos - self.target).abs()
        cont = (pos.abs() < self.wall).float()
        new_state = {"pos": pos.unsqueeze(1), "t": state["t"] + 1}
        return Transition(new_state, reward.float(), cont)

    def features(self, state: State) -> Tensor:
        return torch.cat([state["pos"], state["t"] / 100.0], dim=1).float()  # (B, 2)

    def decode(self, state: State) -> Tensor:
        h, w, c = self.spec.frame_shape
        pos = state["pos"][:, 0]
        column = ((pos + 1) / 2 * (w - 1)).round().long().clamp(0, w - 1)  # (B,)
        frames = torch.zeros(pos.shape[0], h, w, c, dtype=torch.uint8, device=pos.device)
        frames[torch.arange(pos.shape[0]), :, column] = 255
        return frames

    def observe(self, state: State, frame: Tensor, action: Tensor) -> State:
        pos = self._frame_to_pos(frame)
        return {"pos": pos.unsqueeze(1), "t": state["t"] + 1}

    def compute_loss(self, batch: SequenceBatch, step: int = 0) -> tuple[Tensor, dict[str, float]]:
        """The dynamics are known, so only `dummy` learns: it fits the mean reward over the
        frames whose rewards are real (``valid & has_reward``, the batch's masks)."""
        batch = batch.with_masks().to(self.dummy.device)
        labelled = batch.valid & batch.has_reward  # (B, T)
        err = (self.dummy - batch.rewards).square()  # (B, T)
        loss = torch.where(labelled, err, 0.0).sum() / labelled.sum().clamp_min(1)
        return loss, {"loss": float(loss)}


def synthetic_context(model: SyntheticWorldModel, batch: int, pos: float = 0.0) -> tuple[Tensor, Tensor]:
    """A context of `context_len` frames showing the column at `pos`: (frames, actions)."""
    t = model.spec.context_len
    state = {"pos": torch.full((batch, 1), pos), "t": torch.zeros(batch, 1)}
    frame = model.decode(state)  # (B, H, W, C)
    frames = frame.unsqueeze(1).repeat(1, t, 1, 1, 1)  # (B, T, H, W, C)
    shape = (batch, t) + model.spec.action_shape()
    return frames, torch.zeros(shape, dtype=model.spec.action_dtype())


class SyntheticFamily:
    """`SyntheticWorldModel` as a `world_models.base.Family`, for tests that go through the
    registry (checkpoints, the conformance suite); register it inside tests only."""

    name = "synthetic"
    presets: tuple[str, ...] = ("tiny", "small", "medium")

    def default_hparams(self, preset: str) -> dict[str, Any]:
        """Step noise std and context length (the same at every preset)."""
        return {"noise": 0.05, "context_len": 2}

    def make_spec(
        self,
        frame_shape: tuple[int, int, int],
        action_kind: str,
        action_dim: int,
        action_low: tuple[float, ...] | None = None,
        action_high: tuple[float, ...] | None = None,
        preset: str = "small",
        overrides: dict[str, Any] | None = None,
    ) -> ModelSpec:
        """Square RGB frames; 3 discrete actions or one continuous action in [-1, 1]."""
        hparams = {**self.default_hparams(preset), **(overrides or {})}
        if frame_shape[0] != frame_shape[1] or frame_shape[2] != 3:
            raise ValueError(f"the synthetic family draws square RGB frames, got {frame_shape}")
        spec = synthetic_spec(action_kind, frame_shape[0], hparams["context_len"])
        if action_dim != spec.action_dim:
            raise ValueError(f"the synthetic family has action_dim {spec.action_dim} for {action_kind}")
        return ModelSpec(**{**spec.to_dict(), "frame_shape": spec.frame_shape, "hparams": hparams})

    def build(self, spec: ModelSpec) -> SyntheticWorldModel:
        """A synthetic model with the spec's step noise."""
        return SyntheticWorldModel(spec, noise=float(spec.hparams.get("noise", 0.0)))
