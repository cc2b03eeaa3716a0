"""Networks of the RSSM: conv encoder, transposed-conv decoder and the normalised GRU cell.

DreamerV3 (Hafner et al. 2023, arXiv:2301.04104): stride-2 4x4 convolutions that double
the channels until a `min_res` x `min_res` map, each followed by a norm and SiLU; the
decoder mirrors it; the recurrent cell is a GRU with a LayerNorm on its gates and an
update bias of -1. Frames enter and leave channel-last; pixels are scaled to [-0.5, 0.5].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conv_stages(height: int, width: int, min_res: int) -> int:
    """Number of stride-2 stages taking the smaller side of a frame down to about `min_res`
    (the most halvings that leave at least `min_res`); every side must be at least 16 and
    divisible by 2**stages (e.g. 64 -> 4 in 4 stages, 40 -> 5 in 3), so the decoder's
    transposed convs rebuild the exact size."""
    if min(height, width) < 16:
        raise ValueError(f"RSSM frames must have sides >= 16, got {height}x{width}")
    stages = int(math.log2(min(height, width) / min_res)) if min(height, width) > min_res else 0
    if stages < 1:
        raise ValueError(f"min_res {min_res} leaves no conv stage for {height}x{width} frames")
    if height % 2**stages or width % 2**stages:
        raise ValueError(f"RSSM frame sides {height}x{width} must be divisible by 2**{stages} "
                         f"(its {stages} stride-2 stages down to about min_res {min_res})")
    return stages


def frames_to_input(frames: Tensor, pool: int = 1) -> Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H/pool, W/pool) in [-0.5, 0.5], average-pooled."""
    x = frames.permute(0, 3, 1, 2).float() / 255.0 - 0.5
    return F.avg_pool2d(x, pool) if pool > 1 else x


def upsample(pixels: Tensor, factor: int) -> Tensor:
    """Nearest-neighbour upsampling of channel-last pixels (N, h, w, C) -> (N, h*f, w*f, C)."""
    if factor == 1:
        return pixels
    return pixels.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)


def output_to_frames(pixels: Tensor) -> Tensor:
    """float (N, H, W, C) in [-0.5, 0.5] -> uint8 (N, H, W, C)."""
    return ((pixels + 0.5) * 255.0).clamp(0.0, 255.0).round().to(torch.uint8)


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of a (N, C, H, W) map, at every position."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def conv_norm(kind: str, channels: int) -> nn.Module:
    """The norm layer named by `RSSMConfig.conv_norm`."""
    if kind == "channel":
        return ChannelNorm(channels)
    if kind == "group":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


class ConvEncoder(nn.Module):
    """uint8 frames (N, H, W, C) -> float32 embeddings (N, E)."""

    def __init__(
        self, frame_shape: tuple[int, int, int], depth: int, min_res: int, norm: str, pool: int = 1
    ):
        super().__init__()
        self.pool = pool
        height, width, channels = frame_shape[0] // pool, frame_shape[1] // pool, frame_shape[2]
        stages = conv_stages(height, width, min_res)
        layers: list[nn.Module] = []
        in_ch = channels
        for i in range(stages):
            out_ch = depth * 2**i
            layers += [nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=norm == "none")]
            layers += [conv_norm(norm, out_ch), nn.SiLU()]
            in_ch = out_ch
        self.net = nn.Sequential(*layers)
        self.out_dim = in_ch * (height >> stages) * (width >> stages)
        """Length of an embedding."""

    def forward(self, frames: Tensor) -> Tensor:
        """(N, H, W, C) uint8 -> (N, E) float32."""
        return self.net(frames_to_input(frames, self.pool)).flatten(1)


class ConvDecoder(nn.Module):
    """Features (N, F) -> mean pixels (N, H, W, C) in [-0.5, 0.5] space (unclipped)."""

    def __init__(
        self, feat_dim: int, frame_shape: tuple[int, int, int], depth: int, min_res: int, norm: str
    ) -> None:
        super().__init__()
        height, width, channels = frame_shape
        stages = conv_stages(height, width, min_res)
        self.start = (depth * 2 ** (stages - 1), height >> stages, width >> stages)  # (C0, h0, w0)
        self.linear = nn.Linear(feat_dim, math.prod(self.start))
        layers: list[nn.Module] = []
        in_ch = self.start[0]
        for i in reversed(range(stages)):
            last = i == 0
            out_ch = channels if last else depth * 2 ** (i - 1)
            layers.append(nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=last or norm == "none"))
            if not last:
                layers += [conv_norm(norm, out_ch), nn.SiLU()]
            in_ch = out_ch
        self.net = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        """(N, F) -> (N, H, W, C)."""
        x = self.linear(features).view(-1, *self.start)  # (N, C0, h0, w0)
        return self.net(x).permute(0, 2, 3, 1)  # (N, H, W, C)


class NormGRUCell(nn.Module):
    """GRU cell with one fused linear, LayerNorm on the gates and update bias -1 (DreamerV3)."""

    def __init__(self, in_dim: int, size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim + size, 3 * size, bias=False)
        self.norm = nn.LayerNorm(3 * size)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        """x (B, I), h (B, D) -> next h (B, D)."""
        gates = self.norm(self.linear(torch.cat([x, h], dim=-1)))  # (B, 3D)
        reset, cand, update = gates.chunk(3, dim=-1)  # 3 x (B, D)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1.0)
        return update * cand + (1.0 - update) * h


def linear_norm_silu(in_dim: int, out_dim: int) -> nn.Sequential:
    """Linear -> LayerNorm -> SiLU, the RSSM's hidden layer."""
    return nn.Sequential(nn.Linear(in_dim, out_dim, bias=False), nn.LayerNorm(out_dim), nn.SiLU())


def onehot_actions(actions: Tensor, num_actions: int) -> Tensor:
    """int64 (...) -> float32 (..., A) one-hot."""
    return F.one_hot(actions.long(), num_actions).float()
