"""The default calibration clips (lab.analysis.calibration.default_calibration_clips), shared by
`lab prune`, lab.prune.prune and the demo: every clip at hand, never a held-out clip or held-out frames."""

import json
import logging
import shutil

import pytest

from lab import paths
from lab.analysis.calibration import default_calibration_clips
from lab.data.heldout import BIKES_TRAIN_STOP, reads_heldout, training_spec, training_stop
from lab.data.samples import SAMPLES
from lab.errors import LabError


@pytest.fixture
def samples_at(tmp_path, monkeypatch):
    """Point the fetched-clips folder at an empty temporary one; returns a function that 'fetches' names."""
    monkeypatch.setattr(paths, "samples_dir", lambda: tmp_path)

    def fetch(*names, real=None):
        for n in names:
            target = tmp_path / f"{n}.mp4"
            if real:
                shutil.copyfile(real[n], target)
            else:
                target.write_bytes(b"")  # only its presence matters to the clip list
    return fetch


def test_held_out_frames_are_named_by_lab_data_heldout():
    assert training_stop("carphone") == 0 and training_stop("carphone_distorted") == 0  # the twin too
    assert training_stop("bikes") == BIKES_TRAIN_STOP and training_stop("bigbuckbunny") is None
    assert training_stop("bbb-128") is None
    assert not reads_heldout("bikes", BIKES_TRAIN_STOP) and reads_heldout("bikes", 1, start=BIKES_TRAIN_STOP)
    assert training_spec("bikes") == f"bikes[0:{BIKES_TRAIN_STOP}]" and training_spec("bbb-128") == "bbb-128"
    with pytest.raises(LabError, match="held out"):
        training_spec("carphone")


def test_default_clips_are_every_clip_at_hand_less_the_held_out_ones(samples_at):
    assert default_calibration_clips() == ["bbb-128"]  # nothing fetched: the bundled clip alone
    samples_at(*SAMPLES)
    assert default_calibration_clips() == ["bbb-128", "bigbuckbunny", "bikes"]
    # Frames that would run into bikes' held-out range drop bikes, not just trim it.
    assert default_calibration_clips(frames=BIKES_TRAIN_STOP + 1) == ["bbb-128", "bigbuckbunny"]


def test_prune_calibrates_on_the_default_clips_and_says_which(samples_at, sample_clips):
    from lab.models import load_decoder
    from lab.prune import prune

    samples_at("bikes", "carphone", real=sample_clips)
    teacher = load_decoder("wan2.1-tiny", weights="random")
    _, info = prune(teacher, {"up3": 0.5}, "independence", frames=5, size=(32, 32))
    assert info["calibration"]["clips"] == ["bbb-128", "bikes"] and info["calibration"]["default"] is True
    _, info = prune(teacher, {"up3": 0.5}, "independence", clips=["bbb-128"], frames=5, size=(32, 32))
    assert info["calibration"]["clips"] == ["bbb-128"] and info["calibration"]["default"] is False


def test_one_clip_at_hand_warns_and_says_how_to_get_more(samples_at, caplog):
    from lab.models import load_decoder
    from lab.prune import prune

    caplog.set_level(logging.WARNING, logger="lab")
    teacher = load_decoder("wan2.1-tiny", weights="random")
    _, info = prune(teacher, {"up3": 0.25}, "independence", frames=5, size=(32, 32))
    assert info["calibration"]["clips"] == ["bbb-128"]
    warnings = [r.getMessage() for r in caplog.records if "one clip" in r.getMessage()]
    assert len(warnings) == 1 and "python -m lab data fetch" in warnings[0] and "\n" not in warnings[0]


def test_naming_a_held_out_clip_warns(samples_at, sample_clips, caplog):
    from lab.models import load_decoder
    from lab.prune import prune

    samples_at("carphone", real=sample_clips)
    caplog.set_level(logging.WARNING, logger="lab")
    teacher = load_decoder("wan2.1-tiny", weights="random")
    prune(teacher, {"up3": 0.5}, "independence", clips=["carphone"], frames=5, size=(32, 32))
    assert any("held-out frames of carphone" in r.getMessage() for r in caplog.records)


def test_cli_prune_reports_its_default_clips(samples_at, sample_clips, tmp_path, capsys):
    from lab.cli import main

    samples_at("bigbuckbunny", "carphone_distorted", real=sample_clips)
    rc = main(["prune", "--teacher", "wan2.1-tiny", "--weights", "random", "--keep", "up3=0.5", "--frames", "5",
               "--size", "32x32", "--out", str(tmp_path / "s"), "--json"])
    assert rc == 0
    cal = json.loads(capsys.readouterr().out)["calibration"]
    assert cal["clips"] == ["bbb-128", "bigbuckbunny"] and cal["default"] is True
