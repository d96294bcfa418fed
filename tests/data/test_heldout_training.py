"""Held-out clips and frames are never trained on, whichever way a config names them: a held-out clip
(and its twin) is refused, a range into bikes' held-out frames is refused, and a plain 'bikes' means its
training frames. Checked for distillation configs (before a run starts) and for data specs (teachers,
streamed data) alike; by name without reading a file, and (below) by the file a path, folder, glob, copy or
manifest row reaches."""

import json
import os

import pytest

from lab.data.dataset import training_item
from lab.data.heldout import BIKES_TRAIN_STOP, training_range
from lab.distill.config import from_dict
from lab.errors import ConfigError


def test_training_range_keeps_training_off_held_out_frames():
    assert training_range("bbb-128") == (0, None) and training_range("bbb-128", 5, 9, ranged=True) == (5, 9)
    assert training_range("bikes") == (0, BIKES_TRAIN_STOP)
    assert training_range("bikes", 10, BIKES_TRAIN_STOP, ranged=True) == (10, BIKES_TRAIN_STOP)
    for name in ("carphone", "carphone_distorted"):
        with pytest.raises(ConfigError, match=f"'{name}' is held out"):
            training_range(name)
    for stop in (None, BIKES_TRAIN_STOP + 1, 400):
        with pytest.raises(ConfigError, match=f"end the range at {BIKES_TRAIN_STOP} at most"):
            training_range("bikes", 100, stop, ranged=True)


@pytest.mark.parametrize("item", ["carphone", "carphone[0:10]", "carphone_distorted", "bikes[0:]", "bikes[150:250]"])
def test_a_spec_item_naming_held_out_frames_is_refused(item):
    with pytest.raises(ConfigError):
        training_item(item)


@pytest.mark.parametrize("item", ["bbb-128", "bikes", "bikes[0:192]", "/videos/**/*.mp4", "my_clip.mp4"])
def test_other_items_pass(item):
    training_item(item)


@pytest.mark.parametrize("clips", [["bbb-128", "carphone_distorted"], ["bikes[100:]"]])
def test_a_distillation_config_training_on_held_out_frames_is_refused_before_it_runs(clips):
    with pytest.raises(ConfigError, match="held out|never reads"):
        from_dict({"student": {"keep": 0.5}, "data": {"clips": clips}})


def test_a_teacher_run_training_on_a_held_out_clip_is_refused_before_it_runs():
    from lab.teachers.config import TrainConfig
    with pytest.raises(ConfigError, match="'carphone' is held out"):
        TrainConfig.from_flags(model="wan2.1-tiny", clips=["bbb-128", "carphone"]).validate()


# ----- held-out content reached through a path, a folder, a glob, a copy or a manifest ----------------------
# These read the files (a file is known by its path or its bytes), so they need the fetched sample clips.

def _spec_error(clips=(), manifest=None) -> str:
    from lab.data.dataset import resolve_spec
    with pytest.raises(ConfigError) as err:
        resolve_spec(clips, manifest)
    return str(err.value)


def test_the_sample_folder_and_its_files_are_refused_by_path(sample_clips):
    folder = sample_clips["carphone"].parent
    for spec in ([str(folder)], [f"{folder}/*.mp4"], [str(sample_clips["carphone"])],
                 [str(sample_clips["carphone_distorted"])], [f"{sample_clips['carphone']}[0:10]"]):
        text = _spec_error(spec)
        assert "is the sample clip 'carphone" in text and "(by its path)" in text and "Leave it out" in text


def test_a_copy_of_a_held_out_clip_under_another_name_is_refused_by_content(tmp_path, sample_clips):
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "holiday.mp4").write_bytes(sample_clips["carphone"].read_bytes())
    text = _spec_error([str(tmp_path)])
    assert "holiday.mp4" in text and "'carphone' (by its content)" in text


def test_bikes_reached_by_path_is_cut_to_its_training_frames(tmp_path, sample_clips):
    from lab.data.dataset import resolve_spec
    copy = tmp_path / "b.mp4"
    copy.write_bytes(sample_clips["bikes"].read_bytes())
    for item in (str(sample_clips["bikes"]), str(copy)):
        e, = resolve_spec([item])
        assert (e.start, e.stop) == (0, BIKES_TRAIN_STOP)
    assert "end the range at 192" in _spec_error([f"{copy}[100:250]"])
    # the name, the sample file and a folder holding it are one file: listed once
    folder = tmp_path / "only_bikes"
    folder.mkdir()
    (folder / "bikes.mp4").symlink_to(sample_clips["bikes"])
    got = resolve_spec(["bikes", str(sample_clips["bikes"]), str(folder)])
    assert len(got) == 1 and (got[0].start, got[0].stop) == (0, BIKES_TRAIN_STOP)


def test_a_manifest_row_held_out_stays_out_when_a_folder_of_the_spec_holds_it(video_folder, tmp_path):
    from lab.data.dataset import resolve_spec
    m = tmp_path / "m.csv"
    m.write_text(f"path,split\n{video_folder / 'v1.mp4'},test\n{video_folder / 'v2.mp4'},train\n")
    got = sorted(os.path.basename(e.path) for e in resolve_spec([str(video_folder)], str(m)))
    assert "v1.mp4" not in got and got.count("v2.mp4") == 1  # v2: in the folder and the manifest, listed once


def test_a_held_out_clip_as_a_manifest_train_row_is_refused(tmp_path, sample_clips):
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"path": str(sample_clips["carphone_distorted"]), "split": "train"}) + "\n")
    assert "sample clip 'carphone_distorted'" in _spec_error(manifest=str(m))


def test_a_teacher_run_on_the_sample_folder_is_refused(sample_clips):
    from lab.teachers.config import TrainConfig
    from lab.teachers.data import training_clip_windows
    cfg = TrainConfig.from_flags(model="wan2.1-tiny", clips=[str(sample_clips["carphone"].parent)])
    cfg.validate()  # names only: the folder passes, its files are checked when the data is read
    with pytest.raises(ConfigError, match="sample clip 'carphone"):
        training_clip_windows(cfg)


def test_a_file_split_by_range_keeps_its_train_rows(video_folder, tmp_path):
    from lab.data.dataset import resolve_spec
    # v1's frames 0-15 train, 20-32 are held out: the train row stays, the folder does not bring v1 back whole.
    m = tmp_path / "m.csv"
    v1 = video_folder / "v1.mp4"
    m.write_text(f"path,start,stop,split\n{v1},0,16,train\n{v1},20,33,val\n")
    entries = resolve_spec([str(video_folder)], str(m))
    got = {(os.path.basename(e.path), e.start, e.stop) for e in entries}
    assert ("v1.mp4", 0, 16) in got and ("v1.mp4", 0, None) not in got and ("v2.mp4", 0, None) in got
    m.write_text(f"path,start,stop,split\n{v1},0,21,train\n{v1},20,33,val\n")
    with pytest.raises(ConfigError, match="overlaps"):
        resolve_spec([], str(m))


def test_held_out_content_by_path_is_refused_before_a_run_folder_exists(sample_clips, tmp_path):
    # A refused run leaves nothing behind (the corrected command would otherwise need --overwrite).
    from lab.distill import distill
    from lab.teachers.config import TeacherData, TrainConfig
    from lab.teachers.train import train
    folder = str(sample_clips["carphone"].parent)
    with pytest.raises(ConfigError, match="sample clip 'carphone"):
        distill({"teacher": "wan2.1-tiny", "teacher_weights": "random", "student": {"keep": 0.5},
                 "data": {"clips": [folder]}}, tmp_path / "distill")
    with pytest.raises(ConfigError, match="sample clip 'carphone"):
        train(TrainConfig(model="wan2.1-tiny", data=TeacherData(clips=[folder])), tmp_path / "teacher")
    assert not (tmp_path / "distill").exists() and not (tmp_path / "teacher").exists()
