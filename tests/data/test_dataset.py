"""Data specs: folders, globs and manifests resolve to video entries; held-out splits never do."""

import json
from pathlib import Path

import pytest

from lab.data.dataset import NoUsableDataError, VideoEntry, read_manifest, resolve_spec, streamed
from lab.errors import ConfigError


def test_a_folder_is_every_video_under_it_sorted(video_folder):
    entries = resolve_spec([str(video_folder)])
    names = [Path(e.path).relative_to(video_folder).as_posix() for e in entries]
    assert names == ["nested/v4.mp4", "nested/v5.mp4", "v0.mp4", "v1.mp4", "v2.mp4", "v3.mp4"]  # no notes.txt
    assert all(e.start == 0 and e.stop is None for e in entries)


def test_a_glob_and_duplicates(video_folder):
    got = resolve_spec([f"{video_folder}/**/v[45].mp4", f"{video_folder}/v0.mp4", f"{video_folder}/v0.mp4"])
    assert [Path(e.path).name for e in got] == ["v4.mp4", "v5.mp4", "v0.mp4"]  # the repeated file counts once


def test_named_clips_and_frame_ranges_stay_in_memory(bundled_clip_path):
    assert not streamed(["bbb-128", "bikes[0:192]", str(bundled_clip_path)])
    assert streamed(["/videos/**/*.mp4"]) and streamed([], manifest="train.jsonl")
    e, = resolve_spec(["bbb-128[4:20]"])
    assert (Path(e.path), e.start, e.stop) == (bundled_clip_path, 4, 20)


def test_csv_manifest_with_splits_and_ranges(video_folder):
    m = video_folder / "manifest.csv"
    m.write_text("path,start,stop,split\nv0.mp4,,,train\nv1.mp4,2,10,\nv2.mp4,,,val\nnested/v4.mp4,0,6,TEST\n")
    rows = read_manifest(m)
    assert [r.split for r in rows] == ["train", "", "val", "test"]
    entries = resolve_spec(manifest=str(m))
    assert entries == [VideoEntry(str(video_folder / "v0.mp4"), split="train"),
                       VideoEntry(str(video_folder / "v1.mp4"), 2, 10)]  # val and test are never sampled


def test_jsonl_manifest(video_folder, tmp_path):
    m = tmp_path / "train.jsonl"
    m.write_text("\n".join(json.dumps(r) for r in [{"path": str(video_folder / "v3.mp4"), "start": 1, "stop": 9},
                                                    {"path": str(video_folder / "v5.mp4"), "split": "heldout"}]))
    assert resolve_spec(manifest=str(m)) == [VideoEntry(str(video_folder / "v3.mp4"), 1, 9)]


@pytest.mark.parametrize("text, match", [("file,split\na.mp4,train\n", "'path' column"),
                                         ("path,start\na.mp4,-3\n", "frame index"),
                                         ("path,start,stop\na.mp4,9,4\n", "empty")])
def test_bad_manifests_name_the_fix(tmp_path, text, match):
    m = tmp_path / "m.csv"
    m.write_text(text)
    with pytest.raises(ConfigError, match=match):
        resolve_spec(manifest=str(m))


def test_a_spec_with_nothing_to_train_on(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"path": "a.mp4", "split": "val"}) + "\n")
    with pytest.raises(NoUsableDataError, match="no training video") as exc:
        resolve_spec([str(tmp_path / "empty-*.mp4")], manifest=str(m))
    assert "\n" not in str(exc.value)
