"""The denoiser network F of the diffusion family: a small U-Net with adaptive group norm.

DIAMOND (Alonso et al. 2024, arXiv:2405.12399) conditions a U-Net (Ronneberger et al. 2015,
arXiv:1505.04597) on past frames by stacking them on the channels of the noisy target, and
on everything else through ONE conditioning vector: the noise level (Fourier features of
EDM's c_noise, Karras et al. 2022, arXiv:2206.00364), the actions of the window, and here
also the context-noise-augmentation level. Every residual block normalises with a group
norm without affine parameters whose scale and shift come from that vector (adaptive group
norm, as in Dhariwal & Nichol 2021, arXiv:2105.05233). The output convolution starts at
zero, so F starts at 0 and D(x, σ) at c_skip x.

Action slots: the K-1 actions that led into context frames 1..K-1, then the action being
taken. Discrete actions are indices with one extra "no action" index (`action_dim`) used at
episode starts, on padding and on action-free data; continuous actions are [scaled action,
known flag] vectors (all zero when unknown).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from world_models.diffusion.edm import fourier_features, fourier_frequencies


def _groups(channels: int) -> int:
    """Groups of a group norm over `channels`: 16 channels per group, at least one group."""
    return max(1, channels // 16)


class AdaGroupNorm(nn.Module):
    """GroupNorm without affine parameters, then ``x (1 + scale) + shift`` from the conditioning."""

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels, affine=False)
        self.affine = nn.Linear(cond_dim, 2 * channels)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """x (B, C, H, W), cond (B, D) -> (B, C, H, W)."""
        scale, shift = self.affine(cond)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        return self.norm(x) * (1.0 + scale) + shift


class ResBlock(nn.Module):
    """Two adaptive-norm -> SiLU -> 3x3 conv layers with a residual connection."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int) -> None:
        super().__init__()
        self.norm1 = AdaGroupNorm(c_in, cond_dim)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.norm2 = AdaGroupNorm(c_out, cond_dim)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """x (B, c_in, H, W), cond (B, D) -> (B, c_out, H, W)."""
        h = self.conv1(F.silu(self.norm1(x, cond)))
        h = self.conv2(F.silu(self.norm2(h, cond)))
        return self.skip(x) + h


class UNet(nn.Module):
    """U-Net over `channels` levels (resolution halves between levels), `blocks` per level.

    Downsampling is a stride-2 conv; upsampling is nearest-neighbour, then the skip
    connection is concatenated and `blocks` residual blocks follow (DIAMOND adds a conv after
    upsampling and one more block on the way up: on CPU both cost ~30% for little gain).
    """

    def __init__(self, c_in: int, c_out: int, channels: tuple[int, ...], blocks: int, cond_dim: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(c_in, channels[0], 3, 1, 1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = channels[0]
        for level, ch in enumerate(channels):
            self.down.append(nn.ModuleList(
                ResBlock(prev if i == 0 else ch, ch, cond_dim) for i in range(blocks)
            ))
            prev = ch
            if level < len(channels) - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, 2, 1))
        self.up = nn.ModuleList()
        for level in reversed(range(len(channels))):
            ch = channels[level]
            self.up.append(nn.ModuleList(
                ResBlock(prev + ch if i == 0 else ch, ch, cond_dim) for i in range(blocks)
            ))
            prev = ch
        self.norm_out = nn.GroupNorm(_groups(prev), prev)
        self.conv_out = nn.Conv2d(prev, c_out, 3, 1, 1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """x (B, c_in, H, W), cond (B, D) -> (B, c_out, H, W); H, W divisible by 2^(levels-1)."""
        x = self.conv_in(x)  # (B, ch0, H, W)
        skips = []
        for level, blocks in enumerate(self.down):
            for block in blocks:
                x = block(x, cond)
            skips.append(x)  # (B, ch_level, H / 2^level, W / 2^level)
            if level < len(self.downsample):
                x = self.downsample[level](x)
        for i, blocks in enumerate(self.up):
            if i > 0:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")  # (B, C, 2h, 2w)
            x = torch.cat([x, skips.pop()], dim=1)
            for block in blocks:
                x = block(x, cond)
        return self.conv_out(F.silu(self.norm_out(x)))


class ActionEmbedding(nn.Module):
    """K action slots -> (B, cond_dim): a per-slot embedding, flattened in order, projected."""

    def __init__(self, kind: str, action_dim: int, slots: int, cond_dim: int) -> None:
        super().__init__()
        self.kind = kind
        per_slot = max(1, -(-cond_dim // slots))  # ceil(cond_dim / K)
        if kind == "discrete":
            self.embed: nn.Module = nn.Embedding(action_dim + 1, per_slot)  # index action_dim = none
        else:
            self.embed = nn.Linear(action_dim + 1, per_slot)  # [scaled action, known flag]
        self.proj = nn.Linear(slots * per_slot, cond_dim)

    def forward(self, actions: Tensor) -> Tensor:
        """(B, K) int64 indices or (B, K, A + 1) float inputs -> (B, cond_dim)."""
        return self.proj(self.embed(actions).flatten(1))


class DenoiserNet(nn.Module):
    """F(c_in x, c_noise; context, actions, context-noise level): the network EDM preconditions."""

    def __init__(self, work_channels: int, context_len: int, channels: tuple[int, ...], blocks: int,
                 cond_dim: int, fourier_dim: int, action_kind: str, action_dim: int) -> None:
        super().__init__()
        self.register_buffer("frequencies", fourier_frequencies(fourier_dim), persistent=False)
        self.noise_mlp = nn.Sequential(
            nn.Linear(fourier_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim)
        )
        self.context_noise = nn.Linear(fourier_dim, cond_dim)
        self.actions = ActionEmbedding(action_kind, action_dim, context_len, cond_dim)
        self.cond_proj = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.unet = UNet((context_len + 1) * work_channels, work_channels, channels, blocks, cond_dim)

    def condition(self, c_noise: Tensor, actions: Tensor, c_context: Tensor) -> Tensor:
        """(B,) c_noise, action slots, (B,) context-noise input -> conditioning vector (B, cond_dim)."""
        emb = self.noise_mlp(fourier_features(c_noise, self.frequencies))
        emb = emb + self.context_noise(fourier_features(c_context, self.frequencies))
        return self.cond_proj(emb + self.actions(actions))  # (B, cond_dim)

    def forward(self, x_in: Tensor, cond: Tensor, context: Tensor) -> Tensor:
        """x_in = c_in x (B, c, h, w), cond (B, D), context (B, K c, h, w) scaled by 1/σ_data
        -> network output F (B, c, h, w)."""
        return self.unet(torch.cat([context, x_in], dim=1), cond)
