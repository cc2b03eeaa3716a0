"""Reading raw videos (mp4/gif, anything ffmpeg decodes) as uint8 frame arrays.

Video files are action-free training data (design section 4): `video_paths` expands the
``--videos`` entries (files, folders, comma lists) and `load_video_frames` decodes one file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".gif")
"""Extensions picked up when a folder is given."""


def video_paths(entries: Iterable[str | os.PathLike]) -> list[Path]:
    """Video files named by `entries`: files, folders (their mp4/gif files, sorted), comma lists.

    Raises FileNotFoundError for a missing entry and ValueError when a folder holds no video.
    """
    paths: list[Path] = []
    for entry in entries:
        for part in str(entry).split(","):
            part = part.strip()
            if not part:
                continue
            path = Path(part).expanduser()
            if path.is_dir():
                found = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
                if not found:
                    raise ValueError(f"no {'/'.join(VIDEO_SUFFIXES)} files in folder {path}")
                paths.extend(found)
            elif path.is_file():
                paths.append(path)
            else:
                raise FileNotFoundError(f"no video file or folder at {path}")
    return paths


def load_video_frames(
    path: str | os.PathLike, size: int | tuple[int, int] | None = None
) -> np.ndarray:
    """Every frame of an mp4/gif (anything ffmpeg reads) as uint8 (T, H, W, 3).

    Decodes with the ffmpeg binary that moviepy itself uses (imageio-ffmpeg), frame by
    frame with no frame-rate resampling: moviepy's own reader derives the frame count
    from the rounded duration and drops the last frame of short clips. `size` resizes
    frames to (size, size) or (H, W) (bilinear). Raises FileNotFoundError for a missing
    file and ValueError for an unreadable one.
    """
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no video file at {path}")
    try:
        reader = imageio_ffmpeg.read_frames(
            str(path), pix_fmt="rgb24", output_params=["-fps_mode", "passthrough"]
        )
        meta = next(reader)
        w, h = meta["size"]
        frames = [np.frombuffer(b, dtype=np.uint8).reshape(h, w, 3) for b in reader]
    except Exception as error:  # ffmpeg failures surface as OSError/RuntimeError/KeyError
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"cannot read video {path}: {first_line}") from error
    if not frames:
        raise ValueError(f"video {path} holds no frames")
    video = np.stack(frames)  # (T, H, W, 3)
    if size is not None:
        video = resize_frames(video, (size, size) if isinstance(size, int) else tuple(size))
    return video


def resize_frames(video: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of uint8 (T, H, W, 3) frames to (T, size[0], size[1], 3)."""
    from PIL import Image

    h, w = size
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size}")
    if video.shape[1:3] == (h, w):
        return video
    out = np.empty((len(video), h, w, 3), dtype=np.uint8)  # (T, h, w, 3)
    for i, frame in enumerate(video):
        out[i] = np.asarray(Image.fromarray(frame).resize((w, h), Image.BILINEAR))
    return out
