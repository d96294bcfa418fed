"""Held-out clips and frames are never trained on, whichever way a config names them: a held-out clip
(and its twin) is refused, a range into bikes' held-out frames is refused, and a plain 'bikes' means its
training frames. Checked for distillation configs (before a run starts) and for data specs (teachers,
streamed data) alike; no file is read."""

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
        TrainConfig(model="wan2.1-tiny", clips=["bbb-128", "carphone"]).validate()
