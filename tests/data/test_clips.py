"""The clip-window dataset on real and synthetic clips: shapes, ranges, held-out frames, determinism."""

import numpy as np
import pytest
import torch

from lab.data.clips import ClipSpec, ClipWindows, resize_short_side
from lab.data.video import write_video
from lab.errors import VideoShapeError


@pytest.fixture(scope="module")
def counting_clip(tmp_path_factory):
    """30 flat grey frames whose brightness is 8 * frame index: a window's mean tells its frames."""
    frames = np.stack([np.full((64, 96, 3), 8 * i, dtype=np.uint8) for i in range(30)])
    return str(write_video(tmp_path_factory.mktemp("clips") / "count.mp4", frames, crf=0))


def test_windows_of_the_bundled_clip(bundled_clip_path):
    data = ClipWindows([ClipSpec("bbb", str(bundled_clip_path))], short_sides=(64, 128))
    assert [s["height"] for s in data.summary()] == [64, 128]  # one copy per scale
    x = data.sample(3, 9, 32, torch.Generator().manual_seed(0))
    assert x.shape == (3, 3, 9, 32, 32) and x.dtype == torch.float32
    assert -1.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.05  # real content, not blank
    again = data.sample(3, 9, 32, torch.Generator().manual_seed(0))
    assert torch.equal(x, again)  # the generator alone decides the batch (resumable)


def test_held_out_frames_are_never_sampled(counting_clip):
    data = ClipWindows([ClipSpec("count", counting_clip, 5, 15)], short_sides=(64,))
    assert data.summary()[0]["frames"] == 10
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        x = data.sample(4, 5, 32, gen)
        levels = ((x.mean(dim=(1, 3, 4)) + 1) * 127.5 / 8).round()  # (B, T) frame indices
        assert levels.min() >= 5 and levels.max() <= 14
        assert torch.all(levels[:, 1:] - levels[:, :-1] == 1)  # consecutive frames, in order


def test_bad_requests_say_what_to_do(counting_clip):
    with pytest.raises(VideoShapeError, match="lower 'stop'"):
        ClipWindows([ClipSpec("count", counting_clip, 0, 99)])
    data = ClipWindows([ClipSpec("count", counting_clip)], short_sides=(64,))
    with pytest.raises(VideoShapeError, match="fewer frames or a smaller crop"):
        data.sample(1, 33, 32, torch.Generator())


def test_resize_keeps_aspect_and_never_upscales():
    frames = np.random.default_rng(0).integers(0, 255, (20, 72, 128, 3), dtype=np.uint8)
    assert resize_short_side(frames, 36).shape == (20, 36, 64, 3)
    assert resize_short_side(frames, 144) is frames
