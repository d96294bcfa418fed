"""Streamed windows: shapes, determinism per (seed, rank, step), resume, rank sharding, bad files."""

import logging

import numpy as np
import pytest
import torch

from lab.data.dataset import NoUsableDataError, resolve_spec
from lab.data.stream import StreamWindows, shard


@pytest.fixture(scope="module")
def entries(video_folder):
    return resolve_spec([str(video_folder)])


def test_windows_are_uint8_crops_of_the_files(entries):
    data = StreamWindows(entries, short_sides=(64, 128), seed=0, workers=0)
    x = data.sample_uint8(3, 5, 32, step=0)
    assert x.shape == (3, 5, 32, 32, 3) and x.dtype == torch.uint8 and x.float().std() > 5  # real content
    f = data.sample(3, 5, 32, step=0)
    assert f.shape == (3, 3, 5, 32, 32) and -1 <= f.min() and f.max() <= 1
    assert torch.equal(((f + 1) * 127.5).round().to(torch.uint8), x.permute(0, 4, 1, 2, 3))


def test_batches_depend_on_seed_rank_and_step_only(entries):
    """The same steps with 0 and 2 workers, and a resume at step 3: the same batches."""
    straight = StreamWindows(entries, short_sides=(64,), seed=7, workers=0)
    ref = [straight.sample_uint8(2, 5, 32, step=s) for s in range(6)]
    assert not torch.equal(ref[0], ref[1])
    workers = StreamWindows(entries, short_sides=(64,), seed=7, workers=2)
    try:
        assert all(torch.equal(workers.sample_uint8(2, 5, 32, step=s), ref[s]) for s in range(6))
    finally:
        workers.close()
    resumed = StreamWindows(entries, short_sides=(64,), seed=7, workers=0)
    assert all(torch.equal(resumed.sample_uint8(2, 5, 32, step=s), ref[s]) for s in range(3, 6))
    other = StreamWindows(entries, short_sides=(64,), seed=8, workers=0)
    assert not torch.equal(other.sample_uint8(2, 5, 32, step=0), ref[0])


def test_ranks_stream_disjoint_files(entries):
    parts = [shard(entries, r, 4) for r in range(4)]
    assert sorted(e.path for p in parts for e in p) == sorted(e.path for e in entries)
    assert len({e.path for p in parts for e in p}) == len(entries)  # each file on exactly one rank
    r0 = StreamWindows(entries, short_sides=(64,), rank=0, world=2, workers=0)
    r1 = StreamWindows(entries, short_sides=(64,), rank=1, world=2, workers=0)
    assert not {s.path for s in r0.sources} & {s.path for s in r1.sources}
    assert not torch.equal(r0.sample_uint8(1, 5, 32, step=0), r1.sample_uint8(1, 5, 32, step=0))
    with pytest.raises(NoUsableDataError, match="cannot be shared by 7 processes"):
        shard(entries, 6, 7)


def test_bad_files_are_skipped_and_logged_once(bad_files, caplog):
    caplog.set_level(logging.WARNING, logger="lab.data")
    data = StreamWindows(resolve_spec([str(bad_files)]), short_sides=(64,), seed=0, workers=0)
    for step in range(12):
        assert data.sample_uint8(2, 5, 32, step=step).shape == (2, 5, 32, 32, 3)
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    for name in ("garbage.mp4", "short.mp4", "truncated.mp4"):
        lines = [m for m in skipped if name in m]
        assert len(lines) == 1, (name, skipped)  # once, with its path
        assert str(bad_files / name) in lines[0]
    assert not any("good.mp4" in m for m in skipped)


def test_nothing_usable_is_one_clear_error(bad_files):
    (bad_files / "good.mp4").unlink()
    spec = resolve_spec([str(bad_files)])
    with pytest.raises(NoUsableDataError) as exc:  # short.mp4 fits no 9-frame window; truncated breaks mid-read
        StreamWindows(spec, short_sides=(64,), workers=0).sample_uint8(1, 9, 32, step=0)
    assert "\n" not in str(exc.value) and "nothing usable" in str(exc.value)
    garbage, short, _ = spec
    with pytest.raises(NoUsableDataError, match="none of the 1 video.* can be read"):
        StreamWindows([garbage], short_sides=(64,), workers=0)
    with pytest.raises(NoUsableDataError, match="none of the 1 video.* has 5 readable frames"):
        StreamWindows([garbage, short], short_sides=(64,), workers=0).sample_uint8(1, 5, 32, step=0)


def test_worker_errors_reach_the_trainer_as_one_line(bad_files):
    (bad_files / "good.mp4").unlink()
    data = StreamWindows(resolve_spec([str(bad_files)]), short_sides=(64,), workers=1)
    try:
        with pytest.raises(NoUsableDataError, match="nothing usable"):
            data.sample_uint8(1, 9, 32, step=0)
    finally:
        data.close()


def test_without_a_step_the_generator_decides(entries):
    data = StreamWindows(entries, short_sides=(64,), workers=0)
    a = data.sample(2, 5, 32, torch.Generator().manual_seed(3))
    b = data.sample(2, 5, 32, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and np.isfinite(a.numpy()).all()
