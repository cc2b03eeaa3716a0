"""Latent action model (LAM): a few discrete actions discovered from action-free video.

Genie (Bruce et al. 2024, arXiv:2402.15391, section 2.1): an inverse-dynamics encoder reads
the frame pair (o_t, o_t+1) and emits a code from a tiny vocabulary (8 in Genie); a decoder
must rebuild o_t+1 from o_t and that code, so the code carries what changed. LAPO (Schmidt &
Jiang 2024, "Learning to Act without Actions", arXiv:2312.10812) shows such codes map to the
real actions with very few labels (`world_models.action_map`).

Guards against the known failures (DESIGN section 9):
- copying the next frame: the code is a few FSQ bits (``lam_levels``, default 3 binary
  dimensions = 8 codes) and the decoder sees o_t, so only the change fits through;
- collapse to one code: FSQ has no codebook to die, and a penalty pushes every latent
  dimension's batch std up to 0.5 (`variance_penalty`); code usage is logged;
- codes that describe the ball instead of the paddle: a small label term (a linear head
  predicting the real action from the code, only where ``has_action``) where labels exist;
- the decoder loss weights the pixels that change (motion), which are few;
- optionally (``history``) the decoder also sees o_t-1, so what the past already predicts
  (a ball in flight) needs no code and the code is left to what the action changes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from vector_quantize_pytorch import FSQ

from world_models.action_input import ActionInput
from world_models.base import ModelSpec
from world_models.genie.tokenizer import codebook_usage, down_stages, subsample_valid, to_unit
from world_models.heads import masked_mean


def conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """Conv (3x3, or 4x4 stride 2) -> GroupNorm -> SiLU."""
    kernel = 3 if stride == 1 else 4
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, 1), nn.GroupNorm(1, c_out), nn.SiLU())


def variance_penalty(z: Tensor, mask: Tensor, target: float = 0.5) -> Tensor:
    """Mean over dimensions of relu(target - batch std) of z (M, d) on rows `mask` (M,)."""
    if int(mask.sum()) < 2:
        return z.sum() * 0.0
    std = z[mask].std(dim=0)  # (d,)
    return F.relu(target - std).mean()


class LatentActionModel(nn.Module):
    """IDM encoder (o_t, o_t+1) -> FSQ code; U-Net decoder (o_t, code) -> o_t+1.

    The encoder pools its conv features globally (mean and max), so the code describes the
    change, not where in the frame it happened (the decoder knows o_t).
    """

    def __init__(self, frame_shape: tuple[int, int, int], channels: int, levels: tuple[int, ...],
                 real_spec: ModelSpec, history: bool = False) -> None:
        super().__init__()
        h, w, c = frame_shape
        stages = max(1, int(math.log2(min(h, w) // 4)))  # down to about 4x4
        self.dim, self.n_latent = len(levels), math.prod(levels)
        self.encoder = down_stages(3 * c, channels, stages)
        self.to_code = nn.Sequential(nn.Linear(2 * channels, channels), nn.SiLU(),
                                     nn.Linear(channels, self.dim))
        self.fsq = FSQ(levels=list(levels), preserve_symmetry=any(level == 2 for level in levels))
        self.history = history
        self.dec_in = conv_block((2 if history else 1) * c + self.dim, channels)
        self.dec_down = conv_block(channels, channels, stride=2)
        self.dec_mid = conv_block(channels + self.dim, channels)
        self.dec_up = nn.Sequential(nn.ConvTranspose2d(channels, channels, 4, 2, 1),
                                    nn.GroupNorm(1, channels), nn.SiLU())
        self.dec_out = nn.Conv2d(2 * channels, c, 3, 1, 1)
        self.real_kind = real_spec.action_kind
        self.real_input = ActionInput(real_spec)
        self.label_head = nn.Linear(self.dim, real_spec.action_dim)

    def encode(self, prev: Tensor, frame: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """uint8 (M, H, W, C) x2 -> (pre-quantisation z (M, d), code (M, d) straight-through,
        index (M,) int64)."""
        a, b = to_unit(prev) * 2 - 1, to_unit(frame) * 2 - 1  # (M, C, H, W)
        feat = self.encoder(torch.cat([a, b, b - a], 1)).flatten(2)  # (M, ch, h*w)
        pooled = torch.cat([feat.mean(-1), feat.amax(-1)], 1)  # (M, 2ch) position-free summary
        z = self.to_code(pooled)  # (M, d)
        code, index = self.fsq(z[:, None])
        return z, code[:, 0], index[:, 0].long()

    @torch.no_grad()
    def infer(self, prev: Tensor, frame: Tensor) -> Tensor:
        """The latent action (M,) int64 of each transition prev -> frame (uint8 (M, H, W, C))."""
        return self.encode(prev, frame)[2]

    def code_vector(self, index: Tensor) -> Tensor:
        """Latent action indices (M,) -> FSQ code vectors (M, d)."""
        return self.fsq.indices_to_codes(index.long()[:, None])[:, 0]

    def predict_next(self, prev: Tensor, code: Tensor, older: Tensor | None = None) -> Tensor:
        """o_t uint8 (M, H, W, C) and code (M, d) (and with ``history`` o_t-1 `older`, the
        same shape as `prev`) -> predicted o_t+1 (M, C, H, W) in ~[0, 1]."""
        x = to_unit(prev)  # (M, C, H, W)
        cond = code[:, :, None, None]  # (M, d, 1, 1)
        inputs = [x, to_unit(older)] if self.history else [x]
        skip = self.dec_in(torch.cat([*inputs, cond.expand(-1, -1, *x.shape[-2:])], 1))  # (M, ch, H, W)
        low = self.dec_down(skip)  # (M, ch, H/2, W/2)
        low = self.dec_mid(torch.cat([low, cond.expand(-1, -1, *low.shape[-2:])], 1))
        up = self.dec_up(low)  # (M, ch, H, W)
        return x + self.dec_out(torch.cat([up, skip], 1))

    def loss(
        self, frames: Tensor, pairs: Tensor, actions: Tensor, labelled: Tensor,
        motion_weight: float, variance_weight: float, label_weight: float, limit: int = 0,
    ) -> tuple[Tensor, dict[str, float]]:
        """LAM objective on windows frames (B, T, H, W, C) uint8.

        `pairs` (B, T) bool marks frames t whose transition (t-1 -> t) is real (valid, same
        episode); `labelled` (B, T) those of them whose ``actions[:, t]`` is a real action.
        With ``history`` the decoder also gets frame t-2 where transition t-1 is real (else
        frame t-1 again).
        At most `limit` real transitions (drawn at random; 0: all) enter the loss.
        Returns (loss, metrics).
        """
        keep = subsample_valid(pairs[:, 1:].flatten(), limit)
        prev, nxt = frames[:, :-1].flatten(0, 1)[keep], frames[:, 1:].flatten(0, 1)[keep]  # (M, H, W, C)
        mask = pairs[:, 1:].flatten()[keep]  # (M,)
        z, code, index = self.encode(prev, nxt)
        older = None
        if self.history:
            has_older = torch.cat([torch.zeros_like(pairs[:, :1]), pairs[:, 1:-1]], 1)  # (B, T-1)
            before = torch.cat([frames[:, :1], frames[:, :-2]], 1)  # (B, T-1, H, W, C) frame t-2
            shape = has_older.shape + (1,) * (frames.ndim - 2)
            older = torch.where(has_older.view(shape), before, frames[:, :-1]).flatten(0, 1)[keep]
        pred = self.predict_next(prev, code, older)  # (M, C, H, W)
        target, before = to_unit(nxt), to_unit(prev)
        moving = (target - before).abs().amax(1, keepdim=True) > 0.02  # (M, 1, H, W)
        weights = 1.0 + motion_weight * moving.float()
        recon = masked_mean(((pred - target).square() * weights).mean((1, 2, 3))[None], mask[None])
        spread = variance_penalty(z, mask)
        loss = recon + variance_weight * spread
        metrics: dict[str, float] = {"lam_recon": float(recon.detach()), "lam_spread": float(spread.detach())}
        known = labelled[:, 1:].flatten()[keep] & mask  # (M,)
        if label_weight > 0:
            logits = self.label_head(code)  # (M, A)
            real = actions[:, 1:].flatten(0, 1)[keep]
            if self.real_kind == "discrete":
                err = F.cross_entropy(logits, real.long().clamp(0, logits.shape[-1] - 1), reduction="none")
                hits = (logits.argmax(-1) == real.long()).float()
                if bool(known.any()):
                    metrics["lam_label_accuracy"] = float(masked_mean(hits[None], known[None]))
            else:
                err = (logits - self.real_input(real)).square().mean(-1)  # (M,)
            label = masked_mean(err[None], known[None])
            loss = loss + label_weight * label
            metrics["lam_label_loss"] = float(label.detach())
        with torch.no_grad():
            used, perplexity = codebook_usage(index[mask], self.n_latent) if bool(mask.any()) else (0.0, 0.0)
        metrics.update(lam_loss=float(loss.detach()), lam_usage=used, lam_perplexity=perplexity)
        return loss, metrics
