"""write_video / load_video_frames round trips and frame-stream composition."""

from __future__ import annotations

import numpy as np
import pytest

from video_envs.video import film_strip, grid, side_by_side, titled, write_image, write_video
from world_models.data import load_video_frames


def _frames(t: int, h: int = 24, w: int = 24, c: int = 3) -> np.ndarray:
    """Smooth frames (a moving gradient), so lossy codecs stay close."""
    y, x = np.mgrid[0:h, 0:w]
    out = np.stack([(x * 8 + y * 4 + 10 * i) % 256 for i in range(t)]).astype(np.uint8)
    return np.repeat(out[..., None], c, axis=-1)  # (T, H, W, C)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
@pytest.mark.parametrize("length", [1, 2, 13])
def test_round_trip_frame_count(tmp_path, suffix, length):
    frames = _frames(length)
    path = write_video(tmp_path / f"clip{suffix}", frames, fps=10)
    video = load_video_frames(path)
    assert video.dtype == np.uint8 and video.shape == (length, 24, 24, 3)
    assert np.abs(video.astype(int) - frames).mean() < 20
    assert [p.name for p in tmp_path.iterdir()] == [f"clip{suffix}"], "no temporary file left"


def test_grey_scale_odd_size_and_resize(tmp_path):
    frames = _frames(4, 15, 17, 1)  # grey, odd sides
    path = write_video(tmp_path / "grey.mp4", frames, scale=3)
    assert load_video_frames(path).shape == (4, 46, 52, 3)  # 45x51 padded to even
    assert load_video_frames(path, size=8).shape == (4, 8, 8, 3)
    assert load_video_frames(path, size=(6, 10)).shape == (4, 6, 10, 3)


def test_write_errors(tmp_path):
    with pytest.raises(ValueError, match="extension"):
        write_video(tmp_path / "x.avi", _frames(2))
    with pytest.raises(ValueError, match="shape"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="empty"):
        write_video(tmp_path / "x.gif", np.zeros((0, 8, 8, 3), np.uint8))
    assert not list(tmp_path.iterdir())


def test_unreadable_video(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"definitely not a video" * 50)
    with pytest.raises(ValueError, match="cannot read video"):
        load_video_frames(bad)
    with pytest.raises(FileNotFoundError):
        load_video_frames(tmp_path / "missing.gif")


def test_side_by_side_and_grid():
    a, b = _frames(5, 8, 8), _frames(3, 8, 8, 1)
    both = side_by_side(a, b, sep=2)
    assert both.shape == (5, 8, 18, 3)
    np.testing.assert_array_equal(both[:, :, :8], a)
    np.testing.assert_array_equal(both[:, :, 8:10], 255)  # separator
    np.testing.assert_array_equal(both[3:, :, 10:], np.repeat(b[-1:], 2, 0).repeat(3, -1))
    tiles = grid([a, a, a], cols=2, sep=1)
    assert tiles.shape == (5, 17, 17, 3)
    np.testing.assert_array_equal(tiles[:, 9:, 9:], 255)  # empty cell
    with pytest.raises(ValueError, match="frame size"):
        side_by_side(a, _frames(5, 4, 4))


def test_film_strip_titles_and_png(tmp_path):
    a, b = _frames(10), _frames(4)
    strip = film_strip([a, b], count=3, sep=2)  # times 0, 4 (b holds its last frame), 9
    assert strip.shape == (3 * 24 + 2 * 2, 2 * 24 + 2, 3)
    assert np.array_equal(strip[26:50, :24], a[4]) and np.array_equal(strip[26:50, 26:], b[3])
    named = film_strip([a, b], count=3, titles=["real", "rssm"])
    assert named.shape == (strip.shape[0] + 12, strip.shape[1], 3)
    assert named[:12, :24].max() > 200 and np.array_equal(named[12:], strip)  # white text on black
    path = write_image(tmp_path / "strip.png", named, scale=2)
    import imageio.v3 as iio

    assert iio.imread(path).shape == (2 * named.shape[0], 2 * named.shape[1], 3)
    with pytest.raises(ValueError, match=".png"):
        write_image(tmp_path / "strip.jpg", strip)
    assert titled(a, "x").shape == (10, 36, 24, 3)
