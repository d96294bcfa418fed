"""Photos as extra training video: synthetic camera moves over real still photographs."""

import numpy as np
import pytest
import torch

from lab.data.clips import ClipSpec, ClipWindows
from lab.data.mix import MixedWindows
from lab.data.stills import StillWindows, load_photos, save_photos, skimage_photos
from lab.errors import LabError


@pytest.fixture(scope="module")
def photos():
    pytest.importorskip("skimage", reason="scikit-image ships the photos (a test dependency)")
    found = skimage_photos(("astronaut", "coffee", "camera"))
    assert set(found) == {"astronaut", "coffee", "camera"}
    return found


def test_photos_are_rgb_uint8_and_round_trip_through_npz(photos, tmp_path):
    assert all(p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 for p in photos.values())
    back = load_photos(save_photos(tmp_path / "p.npz", photos))
    assert set(back) == set(photos) and all(np.array_equal(back[k], photos[k]) for k in photos)
    with pytest.raises(LabError, match="no photo file"):
        load_photos(tmp_path / "absent.npz")


@pytest.mark.slow
def test_registry_photos_come_from_wheels_on_the_index_with_their_licences(tmp_path):
    """The natural photos scikit-learn's and matplotlib's wheels ship (unzipped, never imported), fetched once."""
    import json
    from lab.data.stills import REGISTRY_PHOTOS, registry_photos
    found = registry_photos(tmp_path)
    assert set(found) == set(REGISTRY_PHOTOS) == {"china", "flower", "grace_hopper"}
    assert all(p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 and min(p.shape[:2]) >= 400
               for p in found.values())
    assert found["china"].std() > 30  # a real scene, not a blank or a decoding failure
    licences = json.loads((tmp_path / "LICENSES.json").read_text())
    assert licences["china"]["licence"].startswith("CC-BY 2.0") and "scikit-learn==" in licences["china"]["source"]
    stamp = {f.name: f.stat().st_mtime_ns for f in tmp_path.glob("*.jpg")}
    again = registry_photos(tmp_path)  # already fetched: read, not downloaded again
    assert {f.name: f.stat().st_mtime_ns for f in tmp_path.glob("*.jpg")} == stamp
    assert all(np.array_equal(again[k], found[k]) for k in found)


def test_windows_are_camera_moves_over_one_photo(photos):
    stills = StillWindows(photos, short_side=128)
    x = stills.sample(4, 9, 64, torch.Generator().manual_seed(0))
    assert x.shape == (4, 3, 9, 64, 64) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    # The camera moves: consecutive frames differ, but far less than two unrelated windows do.
    step = (x[:, :, 1:] - x[:, :, :-1]).abs().mean().item()
    unrelated = (x[0] - x[1]).abs().mean().item()
    assert 1e-3 < step < unrelated
    again = stills.sample(4, 9, 64, torch.Generator().manual_seed(0))
    assert torch.equal(x, again)  # reproducible from the generator alone


def test_a_still_window_shows_its_photo(photos):
    # A crop of the astronaut photo must look like that photo: its colours, not the coffee's.
    one = {"astronaut": photos["astronaut"]}
    x = StillWindows(one, short_side=512, max_zoom=1.0, max_roll=0.0, max_shift=0.0).sample(
        1, 1, 512, torch.Generator().manual_seed(0))
    ref = torch.from_numpy(photos["astronaut"]).permute(2, 0, 1).float() / 127.5 - 1
    assert (x[0, :, 0] - ref).abs().mean() < 0.03


def test_mixed_batches_keep_a_fixed_share_of_photos(photos, bundled_clip_path):
    clips = ClipWindows([ClipSpec("bbb", str(bundled_clip_path))], short_sides=(64,))
    mixed = MixedWindows(clips, StillWindows(photos, short_side=64), fraction=0.25)
    x = mixed.sample(8, 5, 32, torch.Generator().manual_seed(1))
    assert x.shape == (8, 3, 5, 32, 32)
    assert mixed.specs == clips.specs and len(mixed.summary()) == 1 + len(photos)
