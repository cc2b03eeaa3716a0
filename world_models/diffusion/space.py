"""Pixel working spaces of the diffusion family: lossless folds of uint8 frames to [-1, 1] maps.

DIAMOND (Alonso et al. 2024, arXiv:2405.12399) denoises frames scaled to [-1, 1] at their
full resolution. On CPU the U-Net is run at a lower resolution without losing detail:

* ``fold`` = f: `torch.nn.functional.pixel_unshuffle` folds each f x f block onto the
  channels, (H, W, C) -> (C f², H/f, W/f) (as in the sub-pixel convolution of Shi et al.
  2016, arXiv:1609.05158); exactly invertible, so a one-pixel CartPole pole survives.
* ``native_grid`` = G: block images (MinAtar's 10x10 grid drawn at 64x64) hold one colour
  per cell; one pixel per cell is kept (a G x G image) and frames are decoded by the same
  nearest upscaling that drew them, ``cell(p) = (p G) // size`` (video_envs/draw.py), which
  is lossless on such images.

A working space maps uint8 frames (N, H, W, C) to float maps (N, c, h, w) (`encode`) and
back (`decode`); `project` snaps a generated map onto what `encode` can produce, so that
imagined frames re-enter the context exactly as real frames would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def frames_to_unit(frames: Tensor) -> Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [-1, 1] (0 -> -1, 255 -> 1)."""
    return frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def unit_to_frames(x: Tensor) -> Tensor:
    """float (N, C, H, W) in [-1, 1] (clamped) -> uint8 (N, H, W, C), rounded to nearest."""
    levels = ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round()  # (N, C, H, W)
    return levels.to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def quantize_unit(x: Tensor) -> Tensor:
    """Clamp to [-1, 1] and round to the 256 levels a uint8 frame can hold."""
    return ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round() / 127.5 - 1.0


def fold(x: Tensor, factor: int) -> Tensor:
    """(N, C, H, W) -> (N, C f², H/f, W/f) by pixel unshuffle (identity for f = 1)."""
    return F.pixel_unshuffle(x, factor) if factor > 1 else x


def unfold(x: Tensor, factor: int) -> Tensor:
    """Inverse of `fold`: (N, C f², h, w) -> (N, C, h f, w f)."""
    return F.pixel_shuffle(x, factor) if factor > 1 else x


def upscale_indices(cells: int, size: int) -> Tensor:
    """(size,) int64 index of the grid cell under each pixel: ``(p cells) // size``."""
    return (torch.arange(size) * cells) // size


def cell_pixels(cells: int, size: int) -> Tensor:
    """(cells,) int64 first pixel of each cell under `upscale_indices` (one pixel per cell)."""
    if not 1 <= cells <= size:
        raise ValueError(f"a grid of {cells} cells needs 1 <= cells <= {size} pixels")
    return (torch.arange(cells) * size + cells - 1) // cells


def grid_pick(x: Tensor, cells: int) -> Tensor:
    """(N, C, H, W) -> (N, C, G, G): one pixel per cell of a G x G block image."""
    rows = cell_pixels(cells, x.shape[-2]).to(x.device)
    cols = cell_pixels(cells, x.shape[-1]).to(x.device)
    return x[..., rows, :][..., cols]


def grid_upscale(x: Tensor, height: int, width: int) -> Tensor:
    """(N, C, G, G) -> (N, C, H, W) nearest upscaling by `upscale_indices` (inverse of grid_pick
    on block images)."""
    rows = upscale_indices(x.shape[-2], height).to(x.device)
    cols = upscale_indices(x.shape[-1], width).to(x.device)
    return x[..., rows, :][..., cols]


def working_shape(frame_shape: tuple[int, int, int], fold_factor: int, grid: int) -> tuple[int, int, int]:
    """(c, h, w) of the pixel working space; ValueError if `fold_factor` does not divide H, W."""
    height, width, channels = frame_shape
    if grid > 0:
        if grid > min(height, width):
            raise ValueError(f"native_grid {grid} exceeds the frame size {height}x{width}")
        return channels, grid, grid
    if height % fold_factor or width % fold_factor:
        raise ValueError(f"fold {fold_factor} must divide the frame sides {height}x{width}")
    return channels * fold_factor**2, height // fold_factor, width // fold_factor


class PixelSpace(nn.Module):
    """Frames in [-1, 1], folded (`fold`) or grid-sampled (`grid_pick`): a lossless working space."""

    bounded = True
    """Values live in [-1, 1] (the sampler clamps its denoised estimates there)."""

    def __init__(self, frame_shape: tuple[int, int, int], fold_factor: int = 1, grid: int = 0) -> None:
        super().__init__()
        self.frame_shape = tuple(frame_shape)
        self.fold_factor, self.grid = int(fold_factor), int(grid)
        self.shape = working_shape(self.frame_shape, self.fold_factor, self.grid)
        """(c, h, w) of a working-space map."""

    def encode(self, frames: Tensor) -> Tensor:
        """uint8 (N, H, W, C) -> float32 (N, c, h, w) in [-1, 1]."""
        x = frames_to_unit(frames)  # (N, C, H, W)
        return grid_pick(x, self.grid) if self.grid else fold(x, self.fold_factor)

    def decode(self, x: Tensor) -> Tensor:
        """float (N, c, h, w) -> uint8 (N, H, W, C) (clamped, rounded)."""
        height, width, _ = self.frame_shape
        x = grid_upscale(x, height, width) if self.grid else unfold(x, self.fold_factor)
        return unit_to_frames(x)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """A generated map (N, c, h, w) -> (its uint8 frames (N, H, W, C), encode of them)."""
        frames = self.decode(x)
        return frames, quantize_unit(x)
