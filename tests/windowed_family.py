"""A test-only windowed model family: a K-frame history, no recurrence, Gaussian step noise.

It exists to prove the `WorldModel` contract is neutral: nothing in the envs, the filter,
checkpoints or the trainer may assume an RSSM. The state is a ring buffer of the last K
frames and actions with a per-row write position (``"pos"`` int64 (B,)); features are a
tiny MLP over the window in chronological order; `step` predicts the next frame from the
features and the action, adds ``noise.normal`` Gaussian noise (a diffusion sampler's
draw in miniature) and pushes the frame into the window. It declares ``ema_decay``, so
the trainer's EMA path runs on a family other than the RSSM. Register it with
``register_family(WindowedFamily())`` inside tests only.

State keys: ``"frames"`` float32 (B, K, H, W, C) in [0, 255], ``"actions"`` float32
(B, K, A_in) network inputs, ``"pos"`` int64 (B,) slot of the oldest frame (next write).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from world_models.base import ModelSpec, State, Transition, check_context, pad_context
from world_models.data import SequenceBatch
from world_models.heads import masked_mean
from world_models.sampling import Noise, as_noise


@dataclass(frozen=True)
class WindowedConfig:
    """Hyper-parameters of the windowed test family."""

    window: int = 3
    """K: frames in the history (the spec's context_len)."""
    hidden: int = 32
    """Feature size."""
    noise_scale: float = 0.05
    """Std of the Gaussian noise added to each imagined frame, as a fraction of 255."""
    ema_decay: float = 0.9
    """Decay of the EMA weights the trainer keeps for imagination (0: none)."""


PRESETS: dict[str, WindowedConfig] = {
    "tiny": WindowedConfig(),
    "small": WindowedConfig(window=4, hidden=64),
    "medium": WindowedConfig(window=4, hidden=128),
}


class WindowedWorldModel(nn.Module):
    """K-frame window model implementing the `WorldModel` protocol (tests only)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.cfg = WindowedConfig(**spec.hparams)
        h, w, c = spec.frame_shape
        self.pixels = h * w * c
        self.k = self.cfg.window
        self.ema_decay = self.cfg.ema_decay
        self.encoder = nn.Sequential(
            nn.Linear(self.k * (self.pixels + spec.action_dim), self.cfg.hidden), nn.Tanh()
        )
        self.decoder = nn.Linear(self.cfg.hidden + spec.action_dim, self.pixels)
        self.reward_head = nn.Linear(self.cfg.hidden, 1)
        self.cont_head = nn.Linear(self.cfg.hidden, 1)

    # ---------------------------------------------------------------- plumbing
    def _action_input(self, actions: Tensor) -> Tensor:
        """Actions (...) int64 or (..., A) -> float32 (..., A_in)."""
        device = self.decoder.weight.device
        if self.spec.action_kind == "discrete":
            return F.one_hot(actions.to(device).long(), self.spec.action_dim).float()
        return actions.to(device=device, dtype=torch.float32)

    def _chronological(self, state: State) -> tuple[Tensor, Tensor]:
        """Window frames (B, K, H, W, C) and actions (B, K, A_in), oldest first."""
        order = (state["pos"][:, None] + torch.arange(self.k, device=state["pos"].device)) % self.k  # (B, K)
        rows = torch.arange(order.shape[0], device=order.device)[:, None]  # (B, 1)
        return state["frames"][rows, order], state["actions"][rows, order]

    def _encode(self, frames: Tensor, actions: Tensor) -> Tensor:
        """Windows (..., K, H, W, C) in [0, 255] and (..., K, A_in) -> features (..., hidden)."""
        x = torch.cat([(frames / 255.0 - 0.5).flatten(-4), actions.flatten(-2)], dim=-1)
        return self.encoder(x)

    def _next_frame(self, feat: Tensor, action_in: Tensor) -> Tensor:
        """Mean next frame in [0, 255]: (..., hidden), (..., A_in) -> (..., H, W, C)."""
        out = torch.sigmoid(self.decoder(torch.cat([feat, action_in], dim=-1))) * 255.0
        return out.unflatten(-1, tuple(self.spec.frame_shape))

    def _push(self, state: State, frame: Tensor, action_in: Tensor) -> State:
        """Write one frame (B, H, W, C) float and action (B, A_in) over the oldest slot."""
        rows = torch.arange(frame.shape[0], device=frame.device)
        frames, actions = state["frames"].clone(), state["actions"].clone()
        frames[rows, state["pos"]] = frame
        actions[rows, state["pos"]] = action_in
        return {"frames": frames, "actions": actions, "pos": (state["pos"] + 1) % self.k}

    # ---------------------------------------------------------------- protocol
    def init_state(self, frames: Tensor, actions: Tensor) -> State:
        """Left-pad the context to K frames (padding rule) and store it oldest first."""
        check_context(self.spec, frames, actions)
        frames, actions = pad_context(frames, actions, self.k)  # (B, K, ...)
        device = self.decoder.weight.device
        return {
            "frames": frames.to(device=device, dtype=torch.float32),
            "actions": self._action_input(actions),
            "pos": torch.zeros(frames.shape[0], dtype=torch.int64, device=device),
        }

    def features(self, state: State) -> Tensor:
        """(B, hidden) float32 features of the window."""
        return self._encode(*self._chronological(state))

    def step(self, state: State, action: Tensor, noise: Noise | torch.Generator | None = None) -> Transition:
        """Predict the next frame, add Gaussian noise drawn from `noise`, push it."""
        action_in = self._action_input(action)  # (B, A_in)
        mean = self._next_frame(self.features(state), action_in)  # (B, H, W, C)
        eps = as_noise(noise).normal(tuple(mean.shape), mean.device)  # (B, H, W, C)
        frame = (mean + self.cfg.noise_scale * 255.0 * eps).clamp(0.0, 255.0)
        new = self._push(state, frame, action_in)
        feat = self.features(new)  # (B, hidden)
        reward = self.reward_head(feat)[:, 0]
        cont = torch.sigmoid(self.cont_head(feat)[:, 0])
        return Transition(new, reward, cont)

    def decode(self, state: State) -> Tensor:
        """(B, H, W, C) uint8: the newest frame of the window."""
        newest = (state["pos"] - 1) % self.k  # (B,)
        frame = state["frames"][torch.arange(newest.shape[0], device=newest.device), newest]
        return frame.round().clamp(0, 255).to(torch.uint8)

    def observe(self, state: State, frame: Tensor, action: Tensor) -> State:
        """Push a real frame (B, H, W, C) uint8 reached by `action`."""
        device = self.decoder.weight.device
        return self._push(state, frame.to(device=device, dtype=torch.float32), self._action_input(action))

    def compute_loss(self, batch: SequenceBatch, step: int = 0) -> tuple[Tensor, dict[str, float]]:
        """Next-frame MSE, reward MSE and continue BCE on windows ending at every t.

        Every window is left-padded as in burn-in (the batch's first frame starts it);
        is_first inside a window is not respected (a test family). Masks: an action that is
        not ``has_action`` reads as zero (as in burn-in), frames count only where ``valid``
        (padding is a suffix, so it never enters a valid frame's window) and rewards and
        continues only where ``valid & has_reward``.
        """
        device = self.decoder.weight.device
        batch = batch.with_masks().to(device)
        valid, labelled = batch.valid, batch.valid & batch.has_reward  # (B, T) each
        known = batch.has_action.view(*batch.has_action.shape, *[1] * (batch.actions.ndim - 2))
        actions = torch.where(known, batch.actions, torch.zeros_like(batch.actions))  # (B, T[, A])
        t = batch.frames.shape[1]
        # the whole window padded like a burn-in context: K - 1 copies of frame 0, zero actions
        frames_p, actions_p = pad_context(batch.frames, actions, t + self.k - 1)
        frames_p, act_p = frames_p.float(), self._action_input(actions_p)  # (B, T+K-1, ...)
        frames, act = frames_p[:, self.k - 1 :], act_p[:, self.k - 1 :]  # (B, T, ...)
        windows = torch.stack([frames_p[:, i : i + self.k] for i in range(t)], 1)  # (B, T, K, H, W, C)
        win_act = torch.stack([act_p[:, i : i + self.k] for i in range(t)], 1)  # (B, T, K, A_in)
        feat = self._encode(windows, win_act)  # (B, T, hidden)
        pred = self._next_frame(feat[:, :-1], act[:, 1:])  # (B, T-1, H, W, C)
        frame_err = ((pred - frames[:, 1:]) / 255.0).square().mean((-3, -2, -1))  # (B, T-1)
        frame_loss = masked_mean(frame_err, valid[:, 1:])
        reward_err = (self.reward_head(feat)[..., 0] - batch.rewards.float()).square()  # (B, T)
        reward_loss = masked_mean(reward_err, labelled)
        cont_target = (~batch.terminated.bool()).float()  # (B, T)
        cont_logit = self.cont_head(feat)[..., 0]  # (B, T)
        cont_err = F.binary_cross_entropy_with_logits(cont_logit, cont_target, reduction="none")
        cont_loss = masked_mean(cont_err, labelled)
        loss = frame_loss + reward_loss + cont_loss
        metrics = {"loss": float(loss), "frame_loss": float(frame_loss), "reward_loss": float(reward_loss),
                   "cont_loss": float(cont_loss)}
        return loss, metrics



class WindowedFamily:
    """The windowed test model as a `world_models.base.Family` (register it in tests only)."""

    name = "windowed"
    presets: tuple[str, ...] = tuple(PRESETS)

    def default_hparams(self, preset: str) -> dict[str, Any]:
        """Hyper-parameters of `preset`."""
        return asdict(PRESETS[preset])

    def make_spec(
        self,
        frame_shape: tuple[int, int, int],
        action_kind: Literal["discrete", "continuous"],
        action_dim: int,
        action_low: tuple[float, ...] | None = None,
        action_high: tuple[float, ...] | None = None,
        preset: str = "small",
        overrides: dict[str, Any] | None = None,
    ) -> ModelSpec:
        """A spec at `preset` with `overrides` (already validated by the registry)."""
        cfg = WindowedConfig(**{**asdict(PRESETS[preset]), **(overrides or {})})
        return ModelSpec(
            family=self.name, frame_shape=tuple(frame_shape), action_kind=action_kind,  # type: ignore[arg-type]
            action_dim=action_dim, action_low=action_low, action_high=action_high,
            context_len=cfg.window, feature_dim=cfg.hidden, hparams=asdict(cfg),
        )

    def build(self, spec: ModelSpec) -> WindowedWorldModel:
        """A freshly initialised windowed model."""
        return WindowedWorldModel(spec)
