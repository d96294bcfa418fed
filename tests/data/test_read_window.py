"""read_window: a window decoded after a seek is exactly the same frames as a whole-file read."""

import numpy as np
import pytest

from lab.data.video import read_frames, read_window
from lab.errors import VideoReadError


@pytest.fixture(scope="module")
def keyframed(tmp_path_factory):
    """40 frames, a keyframe every 8: a seek lands on a keyframe before the window and decodes forward."""
    import av
    path = tmp_path_factory.mktemp("kf") / "kf.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.options = {"g": "8", "keyint_min": "8", "sc_threshold": "0", "bf": "2"}
        for i in range(40):
            f = np.full((48, 64, 3), 6 * i, np.uint8)
            f[:8, :8] = rng.integers(0, 255, (8, 8, 3))  # some texture, so frames are not all alike
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.mark.parametrize("backend", ["av", "cv2"])
def test_windows_match_a_whole_read(keyframed, backend, monkeypatch):
    monkeypatch.setenv("LAB_VIDEO_BACKEND", backend)
    whole = read_frames(keyframed)
    assert whole.shape[0] == 40
    for start in (0, 3, 8, 15, 23, 31):
        np.testing.assert_array_equal(read_window(keyframed, start, 9), whole[start:start + 9])
    with pytest.raises(VideoReadError, match="35..43 asked for, 5 decoded"):
        read_window(keyframed, 35, 9)
