"""lab.compare at tiny size: the real mini-wan teacher on the bundled clip (9 frames, 64x64)."""

import torch

torch.set_num_threads(1)

import pytest  # noqa: E402

from lab.compare import (ClipLimits, CompareSession, StudentSpec, UploadError, load_working_clip,  # noqa: E402
                         merge_keep)
from lab.compare.clips import validate_upload, working_size  # noqa: E402
from lab.data.video import probe, write_video  # noqa: E402
from lab.errors import ConfigError  # noqa: E402


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


def _width(session, group):
    stage = group.split(".")[0]
    return next(r["width"] for r in session.report()[stage] if r["group"] == group)


def test_slider_moves_rebuild_students_from_one_cached_analysis(session):
    session.heatmap("up2", 0.5)
    rows = {}
    for keep in (0.5, 0.25, 0.5):  # the second 0.5 comes from the student cache
        result = session.compare([StudentSpec.make(keep)])
        rows[keep] = result.rows[0]
    assert session.analysis_runs == 1, "moving the ratio must not re-run the analysis"
    assert session.student_builds == 2
    width = _width(session, "up2.stream")
    assert rows[0.25]["widths"]["up2.stream"] == width // 4 and rows[0.5]["widths"]["up2.stream"] == width // 2
    assert rows[0.25]["decoder_params"] < rows[0.5]["decoder_params"] < session.teacher.decoder_params()


def test_compare_scores_times_and_writes_videos(session):
    result = session.compare(["teacher", StudentSpec.make(1.0), StudentSpec.make(0.25, operators="flash-vaed"),
                              "no-such-decoder"])
    teacher, same, small, bad = result.rows
    assert teacher["kind"] == "teacher" and teacher["speedup"] == pytest.approx(1.0)
    # keep 1.0 prunes nothing: the student decodes exactly what the teacher does
    assert same["psnr_vs_teacher"] > 60
    assert small["operators"]["up3"] == "conv2d" and small["params_ratio"] < 0.2
    # the swapped student is shown before any training, and says so where it is shown
    assert small["decoder"].endswith("+flash-vaed (untrained)") and "needs distillation" not in small["decoder"]
    assert "untrained" in small["note"] and "python -m lab distill" in small["note"] and "note" not in same
    assert 5 < small["psnr"] < 60 and 0 < small["ssim"] < 1 and small["psnr_vs_teacher"] < same["psnr_vs_teacher"]
    for row in (teacher, same, small):
        assert row["seconds"] > 0 and row["fps"] > 0 and row["decoder_params"] > 0
        assert probe(row["video"])["frames"] == 9
    assert "unknown decoder 'no-such-decoder'" in bad["error"]
    sbs = probe(result.side_by_side)
    # real + three decoders that ran, each 64 px column shown at 128 px (pixels repeated, room for labels)
    assert sbs["frames"] == 9 and sbs["width"] == 128 * 4
    assert probe(result.difference)["width"] == 128 * 4
    assert result.labels[0] == "real"


def test_figures_mark_the_chosen_ratio(session):
    heat = session.heatmap("up2", 0.25)
    rect = [s for s in heat.layout.shapes if s.type == "rect"][0]
    width = _width(session, "up2.stream")
    assert rect.x1 == pytest.approx(width // 4 - 0.5)  # 25% of up2's residual stream
    corr = heat.data[0].z
    assert len(corr) == width and all(abs(corr[i][i] - 1) < 1e-6 for i in range(width))
    assert [s for s in session.heatmap("up2", 0.5).layout.shapes
            if s.type == "rect"][0].x1 == pytest.approx(width // 2 - 0.5)
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


def test_every_decoder_runs_under_the_chosen_runtime_and_stays_eager_after(session):
    spec = StudentSpec.make(0.5, operators="flash-vaed")
    eager = {r["kind"]: r for r in session.compare(["teacher", spec, "tae-64-wan"]).rows}
    fused = {r["kind"]: r for r in session.compare(["teacher", spec, "tae-64-wan"], runtime="fused+subpixel").rows}
    assert fused["teacher"]["decoder"] == "mini-wan@fused+subpixel"
    assert fused["student"]["decoder"] == eager["student"]["decoder"] + "@fused+subpixel"
    # the same decodes within a rounding; speedups still against the eager teacher
    assert fused["teacher"]["psnr_vs_teacher"] > 60 and fused["student"]["psnr"] == pytest.approx(
        eager["student"]["psnr"], abs=1e-3)
    # a decoder with no fused runtime runs eagerly and says so
    assert fused["lightweight"]["decoder"] == "tae-64-wan" and "runs eagerly" in fused["lightweight"]["note"]
    assert session.teacher.fused is None and session.student(spec)[0].fused is None  # analysis needs eager modules
    with pytest.raises(ConfigError, match="unknown runtime 'fast'"):
        session.compare(["teacher"], runtime="fast")


def test_the_device_is_the_users_choice(monkeypatch):
    # python -m lab app compare --device sets LAB_DEVICE; without it, CUDA when there is one.
    from lab.compare import default_device
    monkeypatch.setenv("LAB_DEVICE", "cpu")
    assert default_device() == torch.device("cpu")
    monkeypatch.delenv("LAB_DEVICE")
    assert default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


# ----- what the page shows about a student (issue 31) ----------------------------------------------
def _corr_block(heat, k):
    """The top-left k x k block of the heatmap's |correlation| panel, as a sorted list."""
    z = heat.data[0].z
    return sorted(round(z[i][j], 6) for i in range(k) for j in range(k))


def test_figures_outline_the_channels_the_decoded_student_kept(session):
    # per-stage ratios and a criterion other than the one the figure's order comes from: the red box must
    # still hold exactly the channels this student kept, at the ratio it used for the stage shown
    spec = StudentSpec.make({"up1": 0.5, "up2": 0.125, "up3": 0.5}, "magnitude")
    heat, curve, caption = session.figures("up2", spec)
    kept = session.kept_channels(spec)["up2.stream"]
    width = _width(session, "up2.stream")
    assert len(kept) == round(0.125 * width)
    assert [s.x1 for s in heat.layout.shapes if s.type == "rect"] == [pytest.approx(len(kept) - 0.5)]
    report = next(r for r in session.report()["up2"] if r["group"] == "up2.stream")
    corr = report["correlation"]
    assert _corr_block(heat, len(kept)) == sorted(round(abs(corr[a][b]), 6) for a in kept for b in kept)
    independence_first = report["selection_order"][:len(kept)]
    assert set(kept) != set(independence_first), "magnitude picked what independence picks: the check is empty"
    assert any(s.x0 == 0.125 for s in curve.layout.shapes)
    assert f"{len(kept)} of up2.stream's {width} channels" in caption and "magnitude criterion kept first" in caption
    # for independence itself the figure is the plain analysis order, at the stage's own ratio
    heat, _, _ = session.figures("up3", StudentSpec.make({"up1": 0.5, "up2": 0.125, "up3": 0.25}))
    assert [s.x1 for s in heat.layout.shapes if s.type == "rect"] == [
        pytest.approx(round(0.25 * _width(session, "up3.stream")) - 0.5)]
    assert heat.data[0].z == session.heatmap("up3", 0.25).data[0].z


def test_caption_says_what_the_heatmap_shows_with_its_numbers(session):
    spec = StudentSpec.make(0.5)
    heat, _, caption = session.figures("up3", spec)
    group = next(r for r in session.report()["up3"] if r["group"].endswith(".stream"))
    # the caption speaks of the group the left panel draws
    assert f"|correlation|, {group['group']}" in heat.layout.annotations[0].text
    assert f"between the channels of {group['group']}" in caption
    k = round(0.5 * group["width"])
    kept, dropped = group["selection_order"][:k], group["selection_order"][k:]
    corr = group["correlation"]
    within = sum(abs(corr[i][j]) for i in kept for j in kept if i != j) / (k * (k - 1))
    assert f"Inside the box the mean |r| is {within:.2f}" in caption
    # which way the comparison goes is read from the data, not assumed
    among = sum(abs(corr[i][j]) for i in dropped for j in dropped if i != j) / (len(dropped) * (len(dropped) - 1))
    verdict = ("less correlated with each other than" if within < among - 0.05 else
               "about as correlated with each other as" if within <= among + 0.05 else
               "more correlated with each other than")
    assert f"the kept channels are {verdict} the dropped ones are" in caption
    explained = session.explained_by(group["group"], kept)
    assert explained == pytest.approx(group["explained_variance"][k], abs=1e-6)  # the curve's value at k
    assert f"explain {explained:.1%} of the group's variance" in caption
    assert "1 - R²" in caption
    # a stage the lab does not prune says so, and marks nothing
    heat, _, caption = session.figures("up0", spec)
    assert not [s for s in heat.layout.shapes if s.type == "rect"] and "not prunable" in caption


def test_labels_are_wrapped_to_their_column_never_cut():
    import numpy as np
    from lab.compare.render import label_strip, labelled_row
    labels = ["real", "mini-wan", "pruned 0.15 independence +flash-vaed (untrained)",
              "pruned up1=0.5,up2=0.125,up3=0.25 independence"]
    for width in (32, 64, 128):
        strip, lines = label_strip(labels, width)
        # every character of every label is drawn: lines rejoin to the label
        for text, drawn in zip(labels, lines):
            assert "".join(drawn).replace(" ", "") == text.replace(" ", "")
        assert strip.shape[0] % 2 == 0 and strip.shape[1] == width * len(labels)
        ink = strip.min(axis=2) < 128
        assert not ink[0].any() and not ink[-1].any(), "text touches the strip's top or bottom edge: clipped"
        for i in range(len(labels)):  # each label's ink stays inside its column, off the borders
            cols = np.flatnonzero(ink.any(axis=0))
            mine = cols[(cols >= i * width) & (cols < (i + 1) * width)]
            assert mine.size and mine.min() > i * width and mine.max() < (i + 1) * width - 1
    # "pruned 0.15" used to be cut to "pruned 0.1": at 64 px it now keeps its line
    _, lines = label_strip(["pruned 0.15 independence"], 64)
    assert lines[0][0] == "pruned 0.15"
    # a 64 px column is shown at 128 px by repeating pixels, its label strip above it
    video = torch.rand(1, 3, 2, 16, 64) * 2 - 1
    frames = labelled_row([video, -video], ["real", "pruned 0.15 independence"])
    strip = label_strip(["real", "pruned 0.15 independence"], 128)[0]
    assert frames.shape[1:] == (strip.shape[0] + 32, 256, 3)
    assert (frames[0, :strip.shape[0]] == strip).all()
    from lab.data.video import to_frames
    assert (frames[:, strip.shape[0]::2, :128:2] == to_frames(video)).all()


def test_table_shows_the_columns_that_have_values():
    from lab.compare.handlers import START_COLUMNS, TABLE, table
    rows = [{"decoder": "mini-wan", "kind": "teacher", "decoder_params": 2647795, "seconds": 0.5, "fps": 18.0,
             "speedup": 1.0, "psnr": 18.2, "ssim": 0.43, "error": None},
            {"decoder": "pruned 0.5 independence", "kind": "student", "decoder_params": 1550211, "seconds": 0.25,
             "fps": 36.0, "speedup": 2.0, "psnr": 17.7, "ssim": 0.4, "psnr_vs_teacher": 27.3,
             "ssim_vs_teacher": 0.92, "error": None}]
    t = table(rows)
    assert t["headers"] == START_COLUMNS == ["decoder", "params (M)", "s / decode", "fps", "speed-up", "PSNR (dB)",
                                             "SSIM", "PSNR vs teacher", "SSIM vs teacher"]
    assert t["data"][0][:2] == ["mini-wan", 2.648] and t["data"][0][-1] == ""
    t = table(rows + [{"decoder": "x", "error": "unknown decoder 'x'", "vmaf": 1.5, "peak_mem_bytes": 2**21}])
    assert {"VMAF", "peak MB", "error"} <= set(t["headers"]) and len(t["headers"]) < len(TABLE)
    assert t["data"][2][t["headers"].index("peak MB")] == 2.0


def test_swap_note_names_the_swapped_stages_and_the_trained_students(session):
    from lab.compare.explain import swap_note
    assert session.swap_note(StudentSpec.make(0.5)) == ""
    note = session.swap_note(StudentSpec.make(0.25, operators="flash-vaed"))
    assert "untrained" in note and "distill" in note and "conv2d" in note
    assert "mini-wan-flash" in note  # the distilled student of these latents, to compare with
    arch = session.teacher.arch
    assert "up3: conv2d" in swap_note("up3=conv2d", arch, arch.num_up_blocks(session.teacher.vae))
    assert swap_note("keep", arch, 4) == ""


def test_figures_of_a_new_ratio_build_no_student_and_mark_what_its_build_keeps(session):
    # A slider move redraws the figures from the selection alone; the student built for the decode keeps
    # exactly the channels they marked.
    for criterion in ("independence", "random"):
        spec = StudentSpec.make({"up2": 0.375, "up3": 0.375}, criterion)
        builds = session.student_builds
        session.figures("up3", spec)
        marked = session.kept_channels(spec)
        assert session.student_builds == builds, "drawing the figures built a student"
        assert session.student(spec)[1]["kept"] == marked and session.student_builds == builds + 1
