"""A hand-written world model with known dynamics and reward, for testing envs, agents, planners.

The state is a position x in [-1, 1] drawn as a bright column. Discrete actions
{0, 1, 2} move x by (a - 1) * speed; a continuous action a in [-1, 1] moves it by a * speed.
The reward is ``1 - |x - target|`` so the optimum is to move to `target` and stay; the
episode ends (continue probability 0) when |x| reaches `wall`. Optional Gaussian noise
drawn from the `generator` makes determinism under a seed testable.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from world_models.base import ModelSpec, State, Transition, normal
from world_models.data import SequenceBatch


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
        pos = self._frame_to_pos(frames[:, -1])
        return {"pos": pos.unsqueeze(1), "t": torch.zeros_like(pos).unsqueeze(1)}

    def _delta(self, action: Tensor) -> Tensor:
        if self.spec.action_kind == "discrete":
            return (action.float() - 1.0) * self.speed  # (B,)
        return action.float().reshape(action.shape[0], -1)[:, 0].clamp(-1, 1) * self.speed

    def step(self, state: State, action: Tensor, generator: torch.Generator | None) -> Transition:
        pos = state["pos"][:, 0] + self._delta(action)  # (B,)
        if self.noise:
            eps = normal(generator, tuple(pos.shape), pos.device)
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
        loss = (self.dummy**2).sum()
        return loss, {"loss": float(loss)}


def synthetic_context(model: SyntheticWorldModel, batch: int, pos: float = 0.0) -> tuple[Tensor, Tensor]:
    """A context of `context_len` frames showing the column at `pos`: (frames, actions)."""
    t = model.spec.context_len
    state = {"pos": torch.full((batch, 1), pos), "t": torch.zeros(batch, 1)}
    frame = model.decode(state)  # (B, H, W, C)
    frames = frame.unsqueeze(1).repeat(1, t, 1, 1, 1)  # (B, T, H, W, C)
    shape = (batch, t) + model.spec.action_shape()
    return frames, torch.zeros(shape, dtype=model.spec.action_dtype())
