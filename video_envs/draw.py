"""Tiny numpy rasteriser for pixel observations: hard-edged shapes, no anti-aliasing.

All shapes draw in place into an (H, W, 3) uint8 image, clip at the borders and take
coordinates in pixels (x to the right, y downwards; pixel ``(i, j)`` has its centre at
``(j + 0.5, i + 0.5)``). Only the shape's bounding box is touched, so a frame costs a
few microseconds per shape at 64x64.
"""

from __future__ import annotations

import numpy as np

Color = tuple[int, int, int]
"""An RGB colour, each channel in [0, 255]."""

MIN_SIZE = 16
"""Smallest frame side accepted: below it the drawn shapes are no longer readable."""
MAX_SIZE = 1024
"""Largest frame side accepted (keeps a mistyped size from eating the memory)."""


def validate_size(size: object) -> int:
    """Return `size` as an int, or raise ValueError naming what is wrong with it."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ValueError(f"size must be an integer number of pixels, got {size!r}")
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if size < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} pixels to stay readable, got {size}")
    if size > MAX_SIZE:
        raise ValueError(f"size must be at most {MAX_SIZE} pixels, got {size}")
    return int(size)


def blank(size: int, color: Color) -> np.ndarray:
    """A new (size, size, 3) uint8 image filled with `color`."""
    img = np.empty((size, size, 3), dtype=np.uint8)
    img[...] = color
    return img


def fill_rect(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, color: Color) -> None:
    """Fill the pixels whose centres lie in the box [x0, x1) x [y0, y1)."""
    h, w = img.shape[:2]
    c0 = max(int(np.ceil(x0 - 0.5)), 0)
    c1 = min(int(np.ceil(x1 - 0.5)), w)
    r0 = max(int(np.ceil(y0 - 0.5)), 0)
    r1 = min(int(np.ceil(y1 - 0.5)), h)
    if c1 > c0 and r1 > r0:
        img[r0:r1, c0:c1] = color


def draw_segment(
    img: np.ndarray,
    p0: tuple[float, float],
    p1: tuple[float, float],
    width: float,
    color: Color,
) -> None:
    """Draw a thick segment with round caps: every pixel within width/2 of it."""
    h, w = img.shape[:2]
    half = 0.5 * width
    (ax, ay), (bx, by) = p0, p1
    c0 = max(int(np.floor(min(ax, bx) - half)), 0)
    c1 = min(int(np.ceil(max(ax, bx) + half)) + 1, w)
    r0 = max(int(np.floor(min(ay, by) - half)), 0)
    r1 = min(int(np.ceil(max(ay, by) + half)) + 1, h)
    if c1 <= c0 or r1 <= r0:
        return
    px = np.arange(c0, c1, dtype=np.float64)[None, :] + 0.5 - ax  # (1, Wb)
    py = np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5 - ay  # (Hb, 1)
    dx, dy = bx - ax, by - ay
    norm2 = dx * dx + dy * dy
    if norm2 > 0.0:
        t = np.clip((px * dx + py * dy) / norm2, 0.0, 1.0)  # (Hb, Wb)
        ex, ey = px - t * dx, py - t * dy
    else:
        ex, ey = px, py
    mask = ex * ex + ey * ey <= half * half  # (Hb, Wb)
    img[r0:r1, c0:c1][mask] = color


def fill_circle(img: np.ndarray, center: tuple[float, float], radius: float, color: Color) -> None:
    """Fill a disc: every pixel whose centre lies within `radius` of `center`."""
    draw_segment(img, center, center, 2.0 * radius, color)


def upscale_indices(cells: int, size: int) -> np.ndarray:
    """Row (or column) index of the grid cell under each of `size` pixels.

    Cells become blocks of ``size // cells`` or ``size // cells + 1`` pixels when `size`
    is not a multiple of `cells`.
    """
    return (np.arange(size) * cells) // size
