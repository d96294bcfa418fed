"""A small dataset on disk for the streamed-loader and cache tests: short real videos cut from the bundled
clip, in nested folders, plus the bad files a real folder of thousands holds."""

import numpy as np
import pytest

from lab.data.video import read_frames, write_video


@pytest.fixture(scope="session")
def bundled_frames(bundled_clip_path):
    return read_frames(bundled_clip_path)  # uint8 (33, 128, 128, 3)


@pytest.fixture(scope="session")
def video_folder(tmp_path_factory, bundled_frames):
    """6 videos of 12 frames (each from another point of the bundled clip, two of them one folder down)."""
    root = tmp_path_factory.mktemp("videos")
    for i in range(6):
        sub = root / "nested" if i >= 4 else root
        write_video(sub / f"v{i}.mp4", bundled_frames[2 * i:2 * i + 12], fps=24)
    (root / "notes.txt").write_text("not a video: a folder spec skips it by its name")
    return root


@pytest.fixture
def bad_files(tmp_path, bundled_frames):
    """good.mp4 plus one unreadable, one truncated and one too-short file."""
    write_video(tmp_path / "good.mp4", bundled_frames[:12], fps=24)
    (tmp_path / "garbage.mp4").write_bytes(b"this is not an mp4 file" * 100)
    write_video(tmp_path / "short.mp4", bundled_frames[:3], fps=24)
    # The index first (faststart), then cut: the header still promises 30 frames, decoding stops after a few.
    full = _faststart_mp4(tmp_path / ".full.mp4", bundled_frames[:30])
    (tmp_path / "truncated.mp4").write_bytes(full[: int(len(full) * 0.6)])
    (tmp_path / ".full.mp4").unlink()
    return tmp_path


def _faststart_mp4(path, frames) -> bytes:
    import av
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path.read_bytes()


def frame_ids(batch, frames) -> np.ndarray:
    """A fingerprint of each window of a uint8 batch (B, T, H, W, 3)."""
    return batch.float().mean(dim=(1, 2, 3, 4)).numpy()
