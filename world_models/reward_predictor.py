"""Reward and termination predictor over frame pairs: turns any video generator into an env.

A small recurrent network reads each transition as a pair of frames and the action
between them, (frame_t, frame_t+1, a_t+1), and predicts the reward received on arriving
at frame_t+1 and the probability that the episode continues after it, with vwm's
DreamerV3 two-hot symlog reward head and Bernoulli continue head (`world_models.heads`).
Its GRU state is warmed up on the real context (`burn_in`), so it knows the episode so
far; it is the "reward predictor" of the seed's ``VideoWorldModel(video_gen,
reward_predictor)``, in the spirit of DIAMOND's separate reward/termination model (Alonso
et al. 2024, arXiv:2405.12399). Families embed it (the diffusion family trains it with its
denoiser) and `world_models.overlay` lays it over any checkpoint.

Burn-in reads the first frame as the pair (frame_0, frame_0) with no action, so the state
after a one-frame context already holds that frame, and prefix consistency holds: burn-in
on t frames then `update` with the rest equals burn-in on all of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from world_models.action_input import ActionInput
from world_models.base import ModelSpec
from world_models.batch import SequenceBatch
from world_models.heads import ContinueHead, RewardHead, masked_mean


@dataclass(frozen=True)
class RewardPredictorConfig:
    """Hyper-parameters of the reward/termination predictor."""

    hidden: int = 128
    """GRU state size: the length of the features it gives an agent."""
    depth: int = 16
    """Channels of the first conv stage (doubled at each later stage)."""
    image_size: int = 32
    """Frames are average-pooled to this side before the convs (must divide the frame sides;
    0: keep the frame size)."""
    embed: int = 256
    """Size of the transition embedding fed to the GRU."""
    head_hidden: int = 128
    """Hidden units of the reward and continue heads."""
    head_layers: int = 1
    """Hidden layers of the reward and continue heads."""
    reward_bins: int = 255
    """Two-hot reward bins (symlog space)."""
    terminal_weight: float = 5.0
    """Weight of terminal frames in the continue loss (terminations are rare: class balance)."""
    generated_fraction: float = 0.0
    """Fraction of window rows whose next frames are the generator's own one-step-ahead
    predictions (labelled with the real rewards) when trained as an overlay
    (`world_models.overlay`): robustness to the generator's artefacts."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.generated_fraction <= 1.0:
            raise ValueError(f"generated_fraction must be in [0, 1], got {self.generated_fraction}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RewardPredictorConfig:
        """A config from overrides of the defaults (unknown keys: ValueError naming them)."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown reward predictor options {unknown}; valid: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)


def pair_input(prev: Tensor, frame: Tensor, pool: int) -> Tensor:
    """uint8 (N, H, W, C) x2 -> float32 (N, 3C, H/pool, W/pool): [prev, frame, frame - prev]."""
    a = prev.permute(0, 3, 1, 2).float() / 255.0 - 0.5  # (N, C, H, W)
    b = frame.permute(0, 3, 1, 2).float() / 255.0 - 0.5
    x = torch.cat([a, b, b - a], 1)  # (N, 3C, H, W)
    return F.avg_pool2d(x, pool) if pool > 1 else x


class PairEncoder(nn.Module):
    """Conv net over a frame pair: stride-2 stages down to <= 4x4, then a linear embedding."""

    def __init__(self, frame_shape: tuple[int, int, int], cfg: RewardPredictorConfig) -> None:
        super().__init__()
        height, width, channels = frame_shape
        size = cfg.image_size or min(height, width)
        if height % size or width % size or height // size != width // size:
            raise ValueError(f"reward predictor image_size {size} must divide the frame sides "
                             f"{height}x{width} by the same factor")
        self.pool = height // size
        layers: list[nn.Module] = []
        c_in, c_out, h, w = 3 * channels, cfg.depth, height // self.pool, width // self.pool
        while min(h, w) > 4:
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.GroupNorm(1, c_out), nn.SiLU()]
            c_in, c_out, h, w = c_out, c_out * 2, h // 2, w // 2
        if not layers:
            layers += [nn.Conv2d(c_in, c_out, 3, 1, 1), nn.GroupNorm(1, c_out), nn.SiLU()]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.out = nn.Sequential(nn.Linear(c_in * h * w, cfg.embed), nn.LayerNorm(cfg.embed), nn.SiLU())

    def forward(self, prev: Tensor, frame: Tensor) -> Tensor:
        """uint8 (N, H, W, C) x2 -> (N, embed)."""
        return self.out(self.convs(pair_input(prev, frame, self.pool)).flatten(1))


class RewardPredictor(nn.Module):
    """Recurrent reward and continue predictor over (frame_t, frame_t+1, action) transitions."""

    def __init__(self, spec: ModelSpec, cfg: RewardPredictorConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg if cfg is not None else RewardPredictorConfig()
        self.spec = spec
        self.feature_dim = self.cfg.hidden
        """Length of the hidden state (the features an agent may observe)."""
        self.encoder = PairEncoder(tuple(spec.frame_shape), self.cfg)
        self.action_input = ActionInput(spec)
        self.cell = nn.GRUCell(self.cfg.embed + spec.action_dim, self.cfg.hidden)
        self.reward_head = RewardHead(self.cfg.hidden, self.cfg.head_hidden, self.cfg.head_layers,
                                      self.cfg.reward_bins)
        self.cont_head = ContinueHead(self.cfg.hidden, self.cfg.head_hidden, self.cfg.head_layers)

    def _zeros(self, batch: int) -> Tensor:
        weight = self.cell.weight_hh
        return torch.zeros(batch, self.cfg.hidden, device=weight.device, dtype=weight.dtype)

    def _cell(self, h: Tensor, embed: Tensor, action_in: Tensor) -> Tensor:
        """One GRU step: h (N, hidden), embed (N, E), action_in (N, A) -> (N, hidden)."""
        return self.cell(torch.cat([embed, action_in], -1), h)

    def update(self, h: Tensor, prev: Tensor, frame: Tensor, action: Tensor) -> Tensor:
        """Fold the transition prev -> frame (uint8 (B, H, W, C)) taken by `action` (B[, A])."""
        device = h.device
        embed = self.encoder(prev.to(device), frame.to(device))  # (B, E)
        return self._cell(h, embed, self.action_input(action))

    def start(self, frame: Tensor) -> Tensor:
        """h after an episode's first frame (B, H, W, C): the pair (frame, frame), no action."""
        h = self._zeros(frame.shape[0])
        embed = self.encoder(frame.to(h.device), frame.to(h.device))  # (B, E)
        return self._cell(h, embed, torch.zeros(frame.shape[0], self.spec.action_dim, device=h.device))

    def burn_in(self, frames: Tensor, actions: Tensor) -> Tensor:
        """h after a real context that starts an episode: frames uint8 (B, T, H, W, C),
        actions (B, T[, A]) with ``actions[:, 0]`` ignored -> (B, hidden). Deterministic."""
        h = self.start(frames[:, 0])
        for t in range(1, frames.shape[1]):
            h = self.update(h, frames[:, t - 1], frames[:, t], actions[:, t])
        return h

    def predict(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """(reward (B,), continue probability (B,)) on arriving at the frame h last read."""
        return self.reward_head.predict(h), self.cont_head.prob(h)

    def unroll(self, batch: SequenceBatch, next_frames: Tensor | None = None) -> Tensor:
        """Hidden states (B, T, hidden) over a window; reset on ``is_first`` and at index 0.

        The pair at t is (frame_{t-1}, frame_t) (or (frame_0, frame_0) at a start), the
        action the one that led into frame t (zero where not ``has_action``); `next_frames`
        (B, T, H, W, C), when given, replaces frame_t as the pair's second frame for t > 0.
        """
        batch = batch.with_masks()
        device = self.cell.weight_hh.device
        frames = batch.frames.to(device)  # (B, T, H, W, C)
        b, t = frames.shape[:2]
        starts = batch.is_first.to(device).clone()
        starts[:, 0] = True  # a window that begins mid-episode starts from scratch
        prev = torch.cat([frames[:, :1], frames[:, :-1]], 1)  # (B, T, H, W, C)
        prev = torch.where(starts[..., None, None, None], frames, prev)
        second = frames
        if next_frames is not None:
            second = torch.cat([frames[:, :1], next_frames[:, 1:].to(device)], 1)  # (B, T, H, W, C)
        second = torch.where(starts[..., None, None, None], frames, second)
        embed = self.encoder(prev.flatten(0, 1), second.flatten(0, 1)).unflatten(0, (b, t))  # (B, T, E)
        known = batch.has_action.to(device) & ~starts  # (B, T)
        action_in = self.action_input(batch.actions, known)  # (B, T, A)
        h, states = self._zeros(b), []
        for i in range(t):
            h = torch.where(starts[:, i, None], self._zeros(b), h)
            h = self._cell(h, embed[:, i], action_in[:, i])  # (B, hidden)
            states.append(h)
        return torch.stack(states, 1)  # (B, T, hidden)

    def loss(
        self, batch: SequenceBatch, next_frames: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Two-hot reward and weighted continue losses on ``valid & has_reward`` frames.

        A window's first frame is labelled only when it starts an episode (otherwise the
        reward of arriving there depends on a frame the window does not hold).
        """
        batch = batch.with_masks()
        h = self.unroll(batch, next_frames)  # (B, T, hidden)
        device = h.device
        labelled = (batch.valid & batch.has_reward).to(device)  # (B, T)
        labelled[:, 0] &= batch.is_first[:, 0].to(device)
        rewards = batch.rewards.to(device).float()
        terminal = batch.terminated.to(device).bool()
        reward_loss = masked_mean(self.reward_head.loss(h, rewards), labelled)
        cont_loss = self.cont_head.weighted_loss(h, terminal, labelled, self.cfg.terminal_weight)
        with torch.no_grad():
            predicted_end = self.cont_head.prob(h) < 0.5
            mae = masked_mean((self.reward_head.predict(h) - rewards).abs(), labelled)
            ends = labelled & terminal
        metrics = {"reward_loss": float(reward_loss.detach()), "cont_loss": float(cont_loss.detach()),
                   "reward_mae": float(mae)}
        if bool(ends.any()):
            metrics["termination_recall"] = float(masked_mean(predicted_end.float(), ends))
        return reward_loss + cont_loss, metrics
