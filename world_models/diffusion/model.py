"""The diffusion world model: DIAMOND-style action-conditioned frame diffusion.

DIAMOND (Alonso et al. 2024, "Diffusion for World Modeling: Visual Details Matter in Atari",
arXiv:2405.12399): the next frame is sampled by a few Euler (or Heun) steps of an EDM
denoiser (Karras et al. 2022, arXiv:2206.00364, `world_models.diffusion.edm`) conditioned on
the last K frames and actions (`world_models.diffusion.unet`), in a lossless pixel working
space (`world_models.diffusion.space`) or a small VAE's latent (`world_models.diffusion.vae`).
Rewards and terminations come from the shared recurrent `RewardPredictor` over (frame,
next frame, action), whose hidden state is also the model's features, so an agent sees the
same features on the real env (through `world_models.filter`) as in imagination.

State keys (a ring buffer of K slots, `world_models.base`): ``"context"`` float32
(B, K, c, h, w) working-space frames; ``"actions"`` the action that led into each slot's
frame, int64 (B, K) indices (``action_dim`` = no action) or float32 (B, K, A + 1) [scaled
action, known flag]; ``"pos"`` int64 (B,) slot of the oldest frame (the next write);
``"frame"`` uint8 (B, H, W, C) the newest frame; ``"hidden"`` float32 (B, hidden) the reward
predictor's state. Imagined frames are clamped, rounded to uint8 and re-encoded, so they
enter the context exactly as real frames do.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from world_models.action_input import action_affine
from world_models.base import ModelSpec, State, Transition, check_context, pad_context
from world_models.batch import SequenceBatch
from world_models.diffusion import edm
from world_models.diffusion.config import DiffusionConfig
from world_models.diffusion.objective import denoising_loss
from world_models.diffusion.space import PixelSpace
from world_models.diffusion.unet import DenoiserNet
from world_models.diffusion.vae import LatentSpace
from world_models.reward_predictor import RewardPredictor
from world_models.sampling import Noise, as_noise
from world_models.stages import ParamGroup, Stage, stage_at


def check_resolution(shape: tuple[int, int, int], levels: int) -> None:
    """ValueError unless the working resolution (c, h, w) halves cleanly `levels` - 1 times."""
    factor = 2 ** (levels - 1)
    _, height, width = shape
    if height % factor or width % factor:
        raise ValueError(
            f"the U-Net's {levels} levels need a working resolution divisible by {factor}, got "
            f"{height}x{width} (change channels, fold, native_grid or vae_down)"
        )


def make_space(spec: ModelSpec, cfg: DiffusionConfig) -> PixelSpace | LatentSpace:
    """The working space `cfg` asks for on `spec`'s frames."""
    frame_shape = tuple(spec.frame_shape)
    if cfg.variant == "latent":
        return LatentSpace(frame_shape, cfg.latent_channels, cfg.vae_channels, cfg.vae_down, cfg.kl_weight)
    return PixelSpace(frame_shape, cfg.fold, cfg.native_grid)


class DiffusionWorldModel(nn.Module):
    """Frame diffusion over a K-frame ring buffer implementing the `WorldModel` protocol."""

    def __init__(self, spec: ModelSpec, config: DiffusionConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else DiffusionConfig(**spec.hparams)
        if cfg.context_len != spec.context_len:
            raise ValueError(f"context_len {cfg.context_len} differs from the spec's {spec.context_len}")
        self.spec, self.cfg, self.k = spec, cfg, cfg.context_len
        self.space = make_space(spec, cfg)
        check_resolution(self.space.shape, len(cfg.channels))
        self.denoiser = DenoiserNet(self.space.shape[0], self.k, cfg.channels, cfg.blocks, cfg.cond_dim,
                                    cfg.fourier_dim, spec.action_kind, spec.action_dim)
        self.predictor = RewardPredictor(spec, cfg.predictor_config)
        self.ema_decay = cfg.ema_decay
        """EMA decay for the trainer (its EMA weights are the ones imagination samples with)."""
        self.sigmas = edm.karras_sigmas(cfg.sampling_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho)
        """Sampling schedule σ_0 > ... > σ_{N-1} > 0."""
        center, scale = action_affine(spec)
        self.register_buffer("action_center", center, persistent=False)
        self.register_buffer("action_scale", scale, persistent=False)

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return self.denoiser.unet.conv_in.weight.device

    # ----------------------------------------------------------------- plumbing
    def action_slots(self, actions: Tensor, known: Tensor) -> Tensor:
        """Actions (*lead) int64 or (*lead, A) -> slot inputs: int64 (*lead) with ``action_dim``
        where not `known` (*lead) bool, or float32 (*lead, A + 1) [scaled action, 1], zero where
        not known."""
        known = known.to(self.device)
        if self.spec.action_kind == "discrete":
            index = actions.to(self.device).long()
            return torch.where(known, index, self.spec.action_dim)
        action = actions.to(device=self.device, dtype=torch.float32)
        scaled = (action - self.action_center) / self.action_scale  # (*lead, A)
        flagged = torch.cat([scaled, torch.ones_like(scaled[..., :1])], -1)  # (*lead, A + 1)
        return torch.where(known[..., None], flagged, 0.0)

    def network(self, x: Tensor, sigma: Tensor, context: Tensor, slots: Tensor,
                context_sigma: Tensor) -> tuple[Tensor, edm.Preconditioning]:
        """F on a noisy sample x (B, c, h, w) at levels sigma (B,), context (B, K, c, h, w) in the
        working space, action slots, context-noise levels (B,) -> (F (B, c, h, w), scalings
        (B, 1, 1, 1) each, at DIAMOND's effective level sqrt(σ² + offset²))."""
        pre = edm.preconditioning(edm.effective_sigma(sigma, self.cfg.offset_noise))  # (B,) each
        cond = self.denoiser.condition(pre.c_noise, slots, edm.log_level(context_sigma, self.cfg.sigma_min))
        pre = edm.Preconditioning(*(c.view(-1, 1, 1, 1) for c in pre))
        out = self.denoiser(x * pre.c_in, cond, context.flatten(1, 2) / edm.SIGMA_DATA)
        return out, pre

    def denoise(self, x: Tensor, sigma: float, context: Tensor, slots: Tensor) -> Tensor:
        """D(x, σ) with a clean context (level 0), clamped to [-1, 1] in a pixel space."""
        b = x.shape[0]
        sigmas = torch.full((b,), float(sigma), device=x.device)
        out, pre = self.network(x, sigmas, context, slots, torch.zeros(b, device=x.device))
        d = edm.denoised(x, out, pre)
        return d.clamp(-1.0, 1.0) if self.space.bounded else d

    @torch.no_grad()
    def sample_next(self, context: Tensor, slots: Tensor, start: Tensor,
                    sigmas: list[float] | None = None, sampler: str | None = None) -> Tensor:
        """Sample next working-space frames (B, c, h, w) from start noise (B, c, h, w) given
        chronological context (B, K, c, h, w) and action slots (the K conditioning actions)."""
        return edm.sample(start, self.sigmas if sigmas is None else sigmas,
                          lambda x, sigma: self.denoise(x, sigma, context, slots),
                          self.cfg.sampler if sampler is None else sampler)

    def _chronological(self, state: State) -> tuple[Tensor, Tensor]:
        """Context (B, K, c, h, w) and action slots (B, K[, A + 1]), oldest first."""
        pos = state["pos"]
        order = (pos[:, None] + torch.arange(self.k, device=pos.device)) % self.k  # (B, K)
        rows = torch.arange(order.shape[0], device=order.device)[:, None]  # (B, 1)
        return state["context"][rows, order], state["actions"][rows, order]

    def _push(self, state: State, work: Tensor, slot: Tensor, frame: Tensor, hidden: Tensor) -> State:
        """Write a working-space frame (B, c, h, w), its action slot and frame over the oldest slot."""
        rows = torch.arange(work.shape[0], device=work.device)
        context, actions = state["context"].clone(), state["actions"].clone()
        context[rows, state["pos"]] = work
        actions[rows, state["pos"]] = slot
        return {"context": context, "actions": actions, "pos": (state["pos"] + 1) % self.k,
                "frame": frame, "hidden": hidden}

    # ----------------------------------------------------------------- protocol
    def init_state(self, frames: Tensor, actions: Tensor) -> State:
        """Burn in on a context that starts an episode: left-padded to K frames (padding rule),
        padded slots and the first frame read as "no action"; the reward predictor's state is
        burned in on the real frames."""
        check_context(self.spec, frames, actions)
        frames, actions = frames.to(self.device), actions.to(self.device)
        b, t = frames.shape[:2]
        with torch.no_grad():
            hidden = self.predictor.burn_in(frames, actions)  # (B, hidden)
            padded, padded_actions = pad_context(frames, actions, self.k)  # (B, K, ...)
            work = self.space.encode(padded.flatten(0, 1)).unflatten(0, (b, self.k))  # (B, K, c, h, w)
        known = (torch.arange(self.k, device=self.device) > self.k - t).expand(b, -1)  # (B, K)
        return {
            "context": work.float(),
            "actions": self.action_slots(padded_actions, known),
            "pos": torch.zeros(b, dtype=torch.int64, device=self.device),
            "frame": frames[:, -1].clone(),
            "hidden": hidden.float(),
        }

    def step(self, state: State, action: Tensor, noise: Noise | torch.Generator | None = None) -> Transition:
        """Sample the next frame (start noise N(0, I) drawn from `noise`), clamp and round it to
        uint8, push it; the reward predictor reads (previous frame, new frame, action)."""
        context, slots = self._chronological(state)
        b, _, c, h, w = context.shape
        start = as_noise(noise).normal((b, c, h, w), self.device)  # (B, c, h, w)
        with torch.no_grad():
            new_slot = self.action_slots(action, torch.ones(b, dtype=torch.bool))  # (B[, A + 1])
            cond = torch.cat([slots[:, 1:], new_slot[:, None]], 1)  # (B, K[, A + 1])
            frame, work = self.space.project(self.sample_next(context, cond, start))
            hidden = self.predictor.update(state["hidden"], state["frame"], frame, action)
            reward, cont = self.predictor.predict(hidden)
        return Transition(self._push(state, work, new_slot, frame, hidden), reward, cont)

    def features(self, state: State) -> Tensor:
        """(B, hidden) float32: the reward predictor's state."""
        return state["hidden"].float()

    def decode(self, state: State) -> Tensor:
        """(B, H, W, C) uint8: the newest frame (real or imagined)."""
        return state["frame"]

    def observe(self, state: State, frame: Tensor, action: Tensor) -> State:
        """Push a real frame (B, H, W, C) uint8 reached by `action` (deterministic)."""
        frame = frame.to(self.device)
        b = frame.shape[0]
        with torch.no_grad():
            work = self.space.encode(frame)  # (B, c, h, w)
            hidden = self.predictor.update(state["hidden"], state["frame"], frame, action)
        slot = self.action_slots(action, torch.ones(b, dtype=torch.bool))
        return self._push(state, work.float(), slot, frame.clone(), hidden.float())

    # ----------------------------------------------------------------- training
    def training_stages(self) -> list[Stage]:
        """Pixel variant: one stage. Latent: "autoencoder" (VAE + reward predictor, vae_steps
        steps), then "dynamics" (denoiser + reward predictor, VAE frozen). The reward predictor
        trains at ``predictor_lr`` when set (its zero-initialised two-hot head is slow to
        learn at the denoiser's rate in a short run)."""
        predictor = ParamGroup(("predictor.",), lr=self.cfg.predictor_lr or None)
        if self.cfg.variant == "pixel":
            return [Stage(name="dynamics", groups=(predictor, ParamGroup(("denoiser.",))))]
        vae, dynamics = ParamGroup(("space.",)), ParamGroup(("denoiser.",))
        return [Stage(name="autoencoder", steps=self.cfg.vae_steps, groups=(predictor, vae)),
                Stage(name="dynamics", groups=(predictor, dynamics))]

    def compute_loss(self, batch: SequenceBatch, step: int = 0) -> tuple[Tensor, dict[str, float]]:
        """The current stage's loss plus the reward predictor's (weighted by reward_scale).

        Dynamics: EDM denoising loss on every target with a full context (and a weighted loss
        on targets whose newest context frame is the model's own prediction,
        `world_models.diffusion.objective`). Autoencoder (latent variant): the VAE's loss on
        valid frames. Training noise comes from torch's global RNG.
        """
        batch = batch.with_masks().to(self.device)
        stages = self.training_stages()
        stage = stages[stage_at(stages, step)[0]].name
        predictor_loss, metrics = self.predictor.loss(batch)
        if stage == "autoencoder":
            assert isinstance(self.space, LatentSpace)
            main, more = self.space.loss(batch.frames.flatten(0, 1), batch.valid.flatten())
        else:
            if isinstance(self.space, LatentSpace):
                self.space.calibrate(batch.frames[batch.valid])
            main, more = denoising_loss(self, batch)
        total = main + self.cfg.reward_scale * predictor_loss
        return total, {**metrics, **more, "loss": float(total.detach())}
