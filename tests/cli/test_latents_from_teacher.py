"""Commands that read clips, for a decoder without an encoder: the latents come from the teacher it records (as
``lab eval`` makes them), or from --teacher (lab.models.pairing.latents_encoder)."""

import contextlib
import io
import json

import torch

from lab.cli import main
from lab.data.samples import resolve_clip
from lab.data.video import load_clip
from lab.models import load_decoder


def _run(*argv) -> dict:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main([*argv, "--json"]) == 0
    return json.loads(buf.getvalue())


def _decode(*argv) -> dict:
    return _run("decode", *argv)


def test_a_student_decodes_a_clip_through_the_teacher_it_records(tmp_path):
    student = load_decoder("mini-wan-flash")
    assert not student.has_encoder and student.teacher_name == "mini-wan"
    out = _decode("--decoder", "mini-wan-flash", "--video", "bbb-128", "--frames", "5", "--out", str(tmp_path / "s.mp4"))
    assert out["encoded_by"] == "mini-wan" and out["video_shape"] == [1, 3, 5, 128, 128]
    named = _decode("--decoder", "mini-wan-flash", "--video", "bbb-128", "--frames", "5", "--teacher", "mini-wan")
    assert named["encoded_by"] == "mini-wan" and (tmp_path / "s.mp4").stat().st_size > 0
    # the same latents the teacher makes of the clip
    teacher = load_decoder("mini-wan")
    z = teacher.encode(load_clip(resolve_clip("bbb-128"), frames=5, frame_multiple=4, spatial_multiple=8))
    assert out["latents_shape"] == list(z.shape)


def test_a_teacher_encodes_its_own_clip():
    out = _decode("--decoder", "wan2.1-tiny", "--weights", "random", "--video", "bbb-128", "--frames", "5")
    assert out["encoded_by"] == "wan2.1-tiny"
    assert torch.Size(out["latents_shape"])[1] == 16


def test_a_student_is_analysed_on_its_teachers_latents_of_real_clips():
    out = _run("analyze", "--decoder", "mini-wan-flash", "--clips", "bbb-128", "--frames", "5", "--size", "32x32")
    assert out["clips"] == ["bbb-128"] and out["groups"]
