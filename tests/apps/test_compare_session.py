"""lab.compare at tiny size: the real mini-wan teacher on the bundled clip (9 frames, 64x64)."""

import torch

torch.set_num_threads(1)

import pytest  # noqa: E402

from lab.compare import (ClipLimits, CompareSession, StudentSpec, UploadError, load_working_clip,  # noqa: E402
                         merge_keep)
from lab.compare.clips import validate_upload, working_size  # noqa: E402
from lab.data.video import probe, write_video  # noqa: E402


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    s = CompareSession("mini-wan", clip="bbb-128", frames=9, short_side=64, device="cpu",
                       out_dir=tmp_path_factory.mktemp("compare"))
    yield s
    s.close()


def test_session_encodes_the_clip_at_working_size(session):
    d = session.describe()
    assert d["device"] == "cpu" and d["frames"] == 9 and d["size"] == [64, 64]
    assert d["source_frames"] == 33 and d["cropped"]  # the 33-frame 128 px clip was cut
    assert tuple(session.latents.shape) == (1, 16, 3, 8, 8)


def test_slider_moves_rebuild_students_from_one_cached_analysis(session):
    session.heatmap("up2", 0.5)
    rows = {}
    for keep in (0.5, 0.25, 0.5):  # the second 0.5 comes from the student cache
        result = session.compare([StudentSpec.make(keep)])
        rows[keep] = result.rows[0]
    assert session.analysis_runs == 1, "moving the ratio must not re-run the analysis"
    assert session.student_builds == 2
    assert rows[0.25]["widths"]["up2.stream"] == 8 and rows[0.5]["widths"]["up2.stream"] == 16
    assert rows[0.25]["decoder_params"] < rows[0.5]["decoder_params"] < session.teacher.decoder_params()


def test_compare_scores_times_and_writes_videos(session):
    result = session.compare(["teacher", StudentSpec.make(1.0), StudentSpec.make(0.25, operators="flash-vaed"),
                              "no-such-decoder"])
    teacher, same, small, bad = result.rows
    assert teacher["kind"] == "teacher" and teacher["speedup"] == pytest.approx(1.0)
    # keep 1.0 prunes nothing: the student decodes exactly what the teacher does
    assert same["psnr_vs_teacher"] > 60
    assert small["operators"]["up3"] == "conv2d" and small["params_ratio"] < 0.2
    assert 5 < small["psnr"] < 60 and 0 < small["ssim"] < 1 and small["psnr_vs_teacher"] < same["psnr_vs_teacher"]
    for row in (teacher, same, small):
        assert row["seconds"] > 0 and row["fps"] > 0 and row["decoder_params"] > 0
        assert probe(row["video"])["frames"] == 9
    assert "unknown decoder 'no-such-decoder'" in bad["error"]
    sbs = probe(result.side_by_side)
    assert sbs["frames"] == 9 and sbs["width"] == 64 * 4  # real + three decoders that ran
    assert probe(result.difference)["width"] == 64 * 4
    assert result.labels[0] == "real"


def test_figures_mark_the_chosen_ratio(session):
    heat = session.heatmap("up2", 0.25)
    rect = [s for s in heat.layout.shapes if s.type == "rect"][0]
    assert rect.x1 == pytest.approx(8 - 0.5)  # 25% of up2's 32 channels
    corr = heat.data[0].z
    assert len(corr) == 32 and all(abs(corr[i][i] - 1) < 1e-6 for i in range(32))
    assert [s for s in session.heatmap("up2", 0.5).layout.shapes if s.type == "rect"][0].x1 == pytest.approx(15.5)
    curve = session.explained_variance("up2", 0.25)
    assert {t.name for t in curve.data if t.name} >= {"up2.stream", "up2.res0.hidden"}
    assert any(s.x0 == 0.25 for s in curve.layout.shapes)
    assert session.prunable_stages() == ["up1", "up2", "up3"]
    # up0 shares the residual stream with mid: shown, but with no kept block
    assert not [s for s in session.heatmap("up0", 0.25).layout.shapes if s.type == "rect"]


def test_only_decoders_of_the_teachers_latents_are_offered(session):
    from lab.compare import extra_decoders
    from lab.models.registry import get_entry
    g = session.teacher.geometry
    for name in extra_decoders(g):
        e = get_entry(name)
        assert e.latent_channels == g.channels and tuple(e.compression) == g.compression
    assert set(extra_decoders(g)) <= set(extra_decoders())


def test_per_stage_ratios_override_the_slider():
    assert merge_keep(0.5, "", ["up1", "up2"]) == 0.5
    assert merge_keep(0.5, "up2=0.125", ["up1", "up2"]) == {"up1": 0.5, "up2": 0.125}
    with pytest.raises(Exception, match="STAGE=RATIO"):
        merge_keep(0.5, "0.3", ["up1"])


def test_ltx_teacher_is_compared_and_pruned_from_its_cached_analysis(tmp_path):
    s = CompareSession("mini-ltx", frames=9, short_side=64, device="cpu", out_dir=tmp_path)
    teacher, student = s.compare(["teacher", StudentSpec.make(0.5)]).rows
    assert teacher["psnr"] > 5 and student["error"] is None, student["error"]
    assert student["decoder_params"] < teacher["decoder_params"] and student["psnr_vs_teacher"] > 20
    assert s.analysis_runs == 1 and s.can_prune


# ----- uploads ------------------------------------------------------------------------------------
def _clip(path, frames=33, h=96, w=128, fps=24.0):
    t = torch.linspace(-1, 1, frames).view(1, 1, frames, 1, 1)
    video = (t * torch.linspace(-1, 1, w).view(1, 1, 1, 1, w)).expand(1, 3, frames, h, w)
    return write_video(path, video, fps=fps)


def test_upload_is_cut_to_the_documented_limits(tmp_path):
    path = _clip(tmp_path / "wide.mp4")
    video, info = load_working_clip(path, frame_multiple=4, spatial_multiple=8, frames=9, short_side=64, upload=True)
    assert tuple(video.shape) == (1, 3, 9, 64, 80) and info["cropped"] and info["clip"] == "wide.mp4"
    assert working_size(720, 1280, 256, 8) == (256, 448)
    assert working_size(100, 60, 256, 8) == (88, 56)  # never upscaled, floored to the 8 px grid
    assert working_size(300, 60, 256, 8) == (112, 56)  # the long side is capped at twice the short one


@pytest.mark.parametrize("case, message", [
    ("text", "not a video"), ("empty", "empty"), ("corrupt", "not a video|could not be decoded|corrupt"),
    ("long", "at most 0.5 s"), ("big", "at most"), ("tiny", "between 32 and"),
])
def test_bad_uploads_are_refused_with_the_reason(tmp_path, case, message):
    limits = ClipLimits(max_duration_s=0.5) if case == "long" else ClipLimits(max_bytes=1000) if case == "big" \
        else ClipLimits()
    if case == "text":
        path = tmp_path / "notes.mp4"
        path.write_text("this is not a video")
    elif case == "empty":
        path = tmp_path / "empty.mp4"
        path.write_bytes(b"")
    elif case == "corrupt":
        good = _clip(tmp_path / "good.mp4").read_bytes()
        path = tmp_path / "corrupt.mp4"
        path.write_bytes(good[:48] + bytes(len(good) - 48))  # header kept, everything after zeroed
    elif case == "tiny":
        path = _clip(tmp_path / "tiny.mp4", h=16, w=16)
    else:
        path = _clip(tmp_path / f"{case}.mp4")
    with pytest.raises(UploadError, match=message):
        validate_upload(path, limits)
        load_working_clip(path, frame_multiple=4, spatial_multiple=8, limits=limits, upload=True)


@pytest.mark.slow
def test_cpu_peak_memory_is_measured_in_a_fresh_process(session):
    """A student exists only in the app; for its CPU peak memory it is saved and decoded in a fresh
    process, as python -m lab bench measures it, once per student."""
    spec = StudentSpec.make(0.25, operators="flash-vaed")
    row = session.compare([spec], memory=True).rows[0]
    assert row["peak_mem_kind"].startswith("cpu peak RSS of a fresh process")
    assert row["peak_mem_bytes"] > row["decode_mem_bytes"] > 0
    assert session.memory(spec) is session.memory(spec)  # cached: no second process


def test_the_device_is_the_users_choice(monkeypatch):
    # python -m lab app compare --device sets LAB_DEVICE; without it, CUDA when there is one.
    from lab.compare import default_device
    monkeypatch.setenv("LAB_DEVICE", "cpu")
    assert default_device() == torch.device("cpu")
    monkeypatch.delenv("LAB_DEVICE")
    assert default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
