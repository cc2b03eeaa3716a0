"""Writing frame streams to mp4/gif (moviepy 2) and composing several streams into one.

Frames are uint8 ``(T, H, W, 3)`` or ``(T, H, W, 1)`` (grey, stacked to RGB on write).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from world_models.atomic import atomic_file

VIDEO_SUFFIXES = (".mp4", ".gif")


def _as_rgb(frames: np.ndarray) -> np.ndarray:
    """Validate a frame stream and return it as uint8 (T, H, W, 3)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise ValueError(
            f"frames must have shape (T, H, W, 3) or (T, H, W, 1), got {frames.shape}"
        )
    if frames.dtype != np.uint8:
        raise TypeError(f"frames must be uint8, got {frames.dtype}")
    if frames.shape[0] == 0:
        raise ValueError("frames is empty: a video needs at least one frame")
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)  # (T, H, W, 3)
    return frames


def write_video(
    path: str | os.PathLike, frames: np.ndarray, fps: int = 30, scale: int = 1
) -> Path:
    """Write `frames` uint8 (T, H, W, 3|1) to an mp4 or gif chosen by the extension of `path`.

    `scale` is an integer nearest-neighbour upscaling (tiny 64x64 frames look blurry in
    players otherwise). mp4 frames are padded to even sizes, as H.264 requires. The file
    is written under a temporary name in the same folder, then renamed: an interrupted
    write never leaves a half-written video at `path`. Returns the path written.
    """
    from moviepy import ImageSequenceClip

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ValueError(
            f"unsupported video extension {path.suffix!r}: use one of {VIDEO_SUFFIXES}"
        )
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    frames = _as_rgb(frames)  # (T, H, W, 3)
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)  # (T, H*s, W*s, 3)
    if suffix == ".mp4":
        pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
        if pad_h or pad_w:
            frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")

    clip = ImageSequenceClip(list(frames), fps=fps)
    try:
        with atomic_file(path) as tmp:
            if suffix == ".gif":
                clip.write_gif(str(tmp), fps=fps, logger=None)
            else:
                clip.write_videofile(
                    str(tmp), fps=fps, codec="libx264", audio=False, logger=None,
                    pixel_format="yuv420p",
                )
    finally:
        clip.close()
    return path


def _pad_time(stream: np.ndarray, length: int) -> np.ndarray:
    """Repeat the last frame so that `stream` (T, H, W, 3) has `length` frames."""
    if stream.shape[0] == length:
        return stream
    tail = np.repeat(stream[-1:], length - stream.shape[0], axis=0)  # (length - T, H, W, 3)
    return np.concatenate([stream, tail], axis=0)


def grid(
    streams: Sequence[np.ndarray], cols: int | None = None, sep: int = 2, sep_value: int = 255
) -> np.ndarray:
    """Tile frame streams, each uint8 (T_i, H, W, 3|1), into one (T, H', W', 3) stream.

    Streams are laid out row by row, `cols` per row (all in one row by default), with a
    `sep`-pixel separator of grey level `sep_value`. Shorter streams hold their last
    frame; empty grid cells stay at the separator colour.
    """
    if not streams:
        raise ValueError("grid needs at least one frame stream")
    rgb = [_as_rgb(s) for s in streams]
    h, w = rgb[0].shape[1:3]
    for i, s in enumerate(rgb):
        if s.shape[1:3] != (h, w):
            raise ValueError(
                f"all streams must share one frame size; stream 0 is {(h, w)}, "
                f"stream {i} is {s.shape[1:3]}"
            )
    cols = len(rgb) if cols is None else cols
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    rows = -(-len(rgb) // cols)
    length = max(s.shape[0] for s in rgb)
    out_h, out_w = rows * h + (rows - 1) * sep, cols * w + (cols - 1) * sep
    out = np.full((length, out_h, out_w, 3), sep_value, dtype=np.uint8)  # (T, H', W', 3)
    for i, s in enumerate(rgb):
        r, c = divmod(i, cols)
        y, x = r * (h + sep), c * (w + sep)
        out[:, y : y + h, x : x + w] = _pad_time(s, length)
    return out


def side_by_side(*streams: np.ndarray, sep: int = 2) -> np.ndarray:
    """Streams (T_i, H, W, 3|1) next to each other in one row: (T, H, n*W + seps, 3)."""
    return grid(streams, cols=len(streams), sep=sep)


def titled(stream: np.ndarray, title: str, height: int = 12) -> np.ndarray:
    """`stream` (T, H, W, 3|1) with a black bar of `height` pixels on top of every frame,
    `title` written in it in white (cut to the frame's width): (T, height + H, W, 3)."""
    from PIL import Image, ImageDraw

    frames = _as_rgb(stream)
    bar = Image.new("RGB", (frames.shape[2], height))
    ImageDraw.Draw(bar).text((2, max(0, (height - 11) // 2)), title, fill=(255, 255, 255))
    bar_frames = np.broadcast_to(np.asarray(bar)[None], (frames.shape[0], height, *frames.shape[2:]))
    return np.concatenate([bar_frames, frames], axis=1)


def film_strip(
    streams: Sequence[np.ndarray], count: int = 8, titles: Sequence[str] | None = None, sep: int = 2
) -> np.ndarray:
    """One still of `count` evenly spaced time steps: a column per stream (T_i, H, W, 3|1), as
    in `side_by_side`, a row per time step, an optional title above each column; uint8
    (H', W', 3). Shorter streams hold their last frame."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if titles is not None and len(titles) != len(streams):
        raise ValueError(f"{len(titles)} titles for {len(streams)} streams")
    rgb = [_as_rgb(s) for s in streams]
    length = max(s.shape[0] for s in rgb)
    times = np.unique(np.linspace(0, length - 1, count).round().astype(int))  # (count',)
    columns = [grid([s[min(t, s.shape[0] - 1)][None] for t in times], cols=1, sep=sep) for s in rgb]
    if titles is not None:
        columns = [titled(c, t) for c, t in zip(columns, titles)]
    return side_by_side(*columns, sep=sep)[0]


def write_image(path: str | os.PathLike, image: np.ndarray, scale: int = 1) -> Path:
    """Write a uint8 (H, W, 3|1) image to a PNG, nearest-neighbour upscaled by `scale`;
    atomically (temporary name, then rename). Returns the path written."""
    import imageio.v3 as iio

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"write_image writes .png files, got {path.name!r}")
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    frame = _as_rgb(np.asarray(image)[None])[0]  # (H, W, 3)
    frame = frame.repeat(scale, axis=0).repeat(scale, axis=1)
    with atomic_file(path) as tmp:
        iio.imwrite(tmp, frame, extension=".png")
    return path
