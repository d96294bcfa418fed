"""Video IO refuses what would not fit before allocating it, and never leaves half a file behind."""

import struct
import zlib

import numpy as np
import pytest

from lab.data import video
from lab.data.video import read_frames, write_video
from lab.errors import ConfigError, VideoReadError


def _png_header(path, side: int) -> None:
    # A valid PNG header for a side x side image and a few rows of data: enough to probe, cheap to write.
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = zlib.compress((b"\x00" * (1 + 3 * side)) * 4)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


@pytest.mark.parametrize("backend", ["av", "cv2"])
def test_huge_image_is_refused_from_its_header(tmp_path, monkeypatch, backend):
    monkeypatch.setenv("LAB_VIDEO_BACKEND", backend)
    png = tmp_path / "huge.png"
    _png_header(png, 16000)
    with pytest.raises(VideoReadError, match="16000x16000 exceed the lab's limit.*downscale it"):
        read_frames(png)


def test_clip_over_the_byte_limit_names_how_many_frames_fit(bundled_clip_path, monkeypatch):
    monkeypatch.setattr(video, "MAX_DECODED_BYTES", 128 * 128 * 3 * 4)  # four frames of the bundled clip
    with pytest.raises(VideoReadError, match="read at most 4 frames"):
        read_frames(bundled_clip_path)
    assert read_frames(bundled_clip_path, max_frames=4).shape == (4, 128, 128, 3)
    assert read_frames(bundled_clip_path, start=30).shape[0] == 3  # only the frames after start count


@pytest.mark.parametrize("fps", [0, -3, float("nan"), float("inf"), "fast", 1e9])
def test_write_refuses_bad_frame_rates(tmp_path, fps):
    with pytest.raises(ConfigError, match="fps must be a number"):
        write_video(tmp_path / "a.mp4", np.zeros((2, 8, 8, 3), np.uint8), fps=fps)
    assert list(tmp_path.iterdir()) == []


def test_write_to_a_folder_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        write_video(tmp_path, np.zeros((2, 8, 8, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("backend", ["av", "cv2"])
def test_failed_write_leaves_no_temp_file(tmp_path, monkeypatch, backend):
    monkeypatch.setenv("LAB_VIDEO_BACKEND", backend)

    def fail(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(video.os, "replace", fail)  # the encoder wrote the temp file; the rename fails
    with pytest.raises(OSError, match="disk full"):
        write_video(tmp_path / "a.mp4", np.zeros((2, 8, 8, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []
