"""``python -m lab demo --quick`` end to end (the real steps on mini-wan at small scale), through
lab.cli.main with --json: the stdout JSON, results.json's schema, the HTML report, the video and
the saved student."""

import contextlib
import io
import json
import re
from html import escape as html_escape
from pathlib import Path

import pytest
import torch

from lab.cli import main


def _strict_json(text: str):
    def reject(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=reject)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    # One run shared by the tests below; capsys is per test, so stdout is captured by hand. --fetch, as
    # `make demo` runs it: several calibration clips and a real held-out clip (offline: the bundled clip).
    out = tmp_path_factory.mktemp("demo") / "run"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["demo", "--quick", "--fetch", "--out", str(out), "--json"])
    return rc, _strict_json(buf.getvalue()), out


@pytest.mark.slow
def test_demo_outputs_and_schema(demo_run):
    from lab.demo.results import validate_results
    from lab.demo.pipeline import STEPS

    rc, r, out = demo_run
    assert rc == 0
    on_disk = _strict_json((out / "results.json").read_text())
    validate_results(on_disk)
    assert on_disk["quality"] == r["quality"] and on_disk["outputs"] == r["outputs"]
    for key in ("report", "results", "side_by_side", "student", "pruned_student"):
        assert Path(r["outputs"][key]).exists(), key
    assert list(r["steps"]) == list(STEPS) and all("seconds" in v for v in r["steps"].values())
    assert r["teacher"]["name"] == "mini-wan" and r["teacher"]["trained_weights"] is True
    # The distillation either ran or says why not.
    assert r["distill"]["status"] in ("ok", "skipped")
    assert r["distill"]["status"] == "ok" or r["distill"]["reason"]
    assert r["steps"]["distill"]["status"] == r["distill"]["status"]


@pytest.mark.slow
def test_demo_numbers_are_measured(demo_run):
    _, r, _ = demo_run
    from lab.demo.pipeline import RANDOM_SEEDS, random_role

    rows = {row["role"]: row for row in r["eval"]["decoders"]}
    seeds = r["pruning"]["random_seeds"]
    assert len(seeds) == RANDOM_SEEDS == 5 and len(set(seeds)) == 5
    randoms = [random_role(k) for k in seeds]
    assert {"teacher", "pruned-independence", "pruned-magnitude", *randoms, "swapped"} <= set(rows)
    for role, row in rows.items():
        assert set(row["vs_clip"]) == {"psnr", "ssim", "vmaf", "temporal"}, role
        assert 5 < row["vs_clip"]["psnr"] < 60, role
    q = r["quality"]
    final = rows[q["final_student"]]
    assert q["retention"] == pytest.approx(final["vs_clip"]["psnr"] / rows["teacher"]["vs_clip"]["psnr"])
    before = q["psnr_vs_teacher_before_training"]
    per_seed = [rows[role]["vs_teacher"]["psnr"] for role in randoms]
    rand = before["random"]
    assert rand["seeds"] == seeds and rand["psnr"] == per_seed
    assert (rand["min"], rand["max"]) == (min(per_seed), max(per_seed))
    assert rand["mean"] == pytest.approx(sum(per_seed) / 5)
    assert q["random_seeds_beaten"] == sum(before["independence"] > p for p in per_seed)
    assert q["independence_beats_baselines"] == (before["independence"] > max(before["magnitude"], rand["mean"]))
    # Different seeds choose different channels.
    assert len({round(p, 6) for p in per_seed}) > 1
    # Same widths for every criterion and seed; the swap makes the student smaller still.
    params = {rows[k]["decoder_params"] for k in ("pruned-independence", "pruned-magnitude", *randoms)}
    assert len(params) == 1 and rows["swapped"]["decoder_params"] < params.pop() < rows["teacher"]["decoder_params"]
    b = r["bench"]
    assert [row["label"] for row in b["decoders"]][0] == "teacher (mini-wan)"
    assert b["decoders"][0]["speedup"] == 1.0
    teacher, student = b["decoders"][0], b["decoders"][2]
    assert student["speedup"] == pytest.approx(teacher["seconds"] / student["seconds"])
    assert student["macs"] < teacher["macs"]
    # mini-wan runs the fused runtime by default on the CPU: the teacher and the final student again, as `lab
    # decode` runs them, each with its gap to its eager row, and the student's ratio on each runtime
    fused_teacher, fused_student = b["decoders"][3:]
    assert fused_teacher["label"] == "teacher (mini-wan) @fused" and fused_student["label"].endswith(" @fused")
    assert fused_teacher["max_abs_err"] < 1e-4 and fused_student["max_abs_err"] < 1e-4
    assert fused_teacher["macs"] == teacher["macs"]
    assert b["student_speedup"] == {"eager": pytest.approx(teacher["seconds"] / student["seconds"]),
                                    "fused": pytest.approx(fused_teacher["seconds"] / fused_student["seconds"])}
    assert {row["stage"] for row in r["profile"]["student"]["stages"]} >= {"mid", "up0", "up3"}


@pytest.mark.slow
def test_demo_names_each_row_once_in_the_terminal_report_and_json(demo_run):
    from lab.cli.demo import render

    _, r, out = demo_run
    rows = {row["role"]: row for row in r["eval"]["decoders"]}
    # named by what they are: the untrained swapped student is not the shipped 'mini-wan-flash'
    assert rows["swapped"]["decoder"] == "student (pruned+swapped, untrained)"
    assert rows["teacher"]["decoder"] == "teacher (mini-wan)"
    assert rows["pruned-magnitude"]["decoder"] == "pruned (magnitude, untrained)"
    assert "mini-wan-flash" != rows["swapped"]["model"] and r["quality"]["final_label"] in {
        "student (distilled)", "student (pruned+swapped, untrained)"}
    labels = [row["decoder"] for row in r["eval"]["decoders"]]
    assert len(set(labels)) == len(labels)
    terminal, html = render(r), Path(r["outputs"]["report"]).read_text()
    on_disk = _strict_json((out / "results.json").read_text())
    assert [row["decoder"] for row in on_disk["eval"]["decoders"]] == labels
    for label in labels:
        assert label in terminal and f"<td>{html_escape(label)}</td>" in html
    # the bench rows use the same names for the same decoders
    bench = [row["label"] for row in r["bench"]["decoders"]]
    final = r["quality"]["final_label"]
    assert bench == [rows["teacher"]["decoder"], rows["pruned-independence"]["decoder"], final,
                     f"{rows['teacher']['decoder']} @fused", f"{final} @fused"]
    assert "with both on the lab's fused runtime" in terminal and "with both on the lab&#x27;s fused runtime" in html


@pytest.mark.slow
def test_demo_retention_comes_with_its_drop_and_metrics_say_which_way_is_better(demo_run):
    from lab.cli.demo import render

    _, r, _ = demo_run
    teacher = r["eval"]["decoders"][0]["vs_clip"]["psnr"]
    for row in r["eval"]["decoders"][1:]:
        assert row["psnr_drop_db"] == pytest.approx(teacher - row["vs_clip"]["psnr"])
    q = r["quality"]
    terminal, html = render(r), Path(r["outputs"]["report"]).read_text()
    drop = f"{abs(q['psnr_drop_db']):.2f} dB {'below' if q['psnr_drop_db'] >= 0 else 'above'} the teacher"
    assert drop in terminal and drop in html
    assert "PSNR drop vs teacher (dB)" in html and "PSNR drop dB" in terminal
    assert r["eval"]["metric_labels"]["temporal"] == "temporal error (lower better)"
    assert "temporal error (lower better) vs clip" in terminal and "temporal error (lower better) vs clip" in html
    # VMAF is scored at its model's viewing size, and the report says so
    assert "upscaled to 1080 lines" in r["eval"]["vmaf_note"]
    assert html_escape(r["eval"]["vmaf_note"]) in html and r["eval"]["vmaf_note"] in terminal


@pytest.mark.slow
def test_demo_calibrates_on_every_clip_at_hand_but_the_held_out_ones(demo_run):
    from lab.analysis.calibration import default_calibration_clips
    from lab.data.heldout import reads_heldout

    _, r, _ = demo_run
    clips = r["clips"]
    assert clips["calibration"] == default_calibration_clips(r["settings"]["calib_frames"])
    assert clips["heldout"] not in clips["calibration"] or clips["heldout"] == "bbb-128"  # later frames of it
    assert not any(reads_heldout(c, r["settings"]["calib_frames"]) for c in clips["calibration"])
    assert not set(clips["distill_val"]) & set(clips["distill"])
    if clips["heldout"] == "carphone":  # the sample clips were fetched: several calibration clips
        assert clips["calibration"] == ["bbb-128", "bigbuckbunny", "bikes"] and "bikes[0:192]" in clips["distill"]


@pytest.mark.slow
def test_demo_report_is_self_contained(demo_run):
    _, r, out = demo_run
    html = Path(r["outputs"]["report"]).read_text()
    # Plotly inlined once, every figure drawn by it, nothing fetched from the network.
    assert html.count("Plotly.newPlot") == 6
    assert not re.search(r"<script[^>]*\bsrc\s*=", html)
    assert not re.search(r"<link[^>]*\bhref\s*=\s*['\"]?https?:", html)
    assert "cdn.plot.ly/plotly" not in html
    for title in ("Channel independence per stage", "Explained variance vs kept channels", "Profile: teacher",
                  "Decode speedup"):
        assert f"<h2>{title}</h2>" in html
    assert "side_by_side.mp4" in html
    # It says what the baseline comparison measured, win or lose, not just whether independence won.
    from lab.demo.report import comparison_text
    assert html_escape(comparison_text(r["quality"])) in html and "5 seeds" in html


@pytest.mark.slow
def test_demo_video_and_student(demo_run):
    from lab.data.video import probe
    from lab.models import load_decoder

    _, r, _ = demo_run
    shape = r["eval"]["video_shape"]  # (1, 3, T, H, W) of the held-out clip
    info = probe(r["outputs"]["side_by_side"])
    assert info["frames"] == shape[2] and info["width"] == 3 * shape[4] and info["height"] == shape[3]
    student = load_decoder(r["outputs"]["student"])
    assert student.family == "student" and student.teacher_name == "mini-wan"
    assert student.decoder_params() == r["swap"]["decoder_params"]
    z = torch.randn(r["eval"]["latents_shape"])
    video = student.decode(z)
    assert video.shape[2:] == torch.Size(shape[2:]) and video.abs().max() <= 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_demo_on_a_missing_gpu_says_so(tmp_path, capsys):
    assert main(["demo", "--quick", "--device", "cuda", "--out", str(tmp_path / "d")]) == 1
    assert "no CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # refused before anything was written


@pytest.mark.slow
def test_demo_runs_again_into_its_own_out_and_keeps_files_it_did_not_write(demo_run):
    # Last in this file: it replaces the outputs the tests above read.
    _, r, out = demo_run
    mine = [out / "mine.txt", out / "distill" / "notes.txt", out / "student" / "notes.txt"]
    for p in mine:
        p.write_text("keep")
    before = (out / "results.json").stat().st_mtime_ns
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["demo", "--quick", "--out", str(out), "--json"]) == 0
    assert all(p.read_text() == "keep" for p in mine)
    assert (out / "results.json").stat().st_mtime_ns > before
    from lab.models import load_decoder
    from lab.runs.store import RunReader
    assert load_decoder(str(out / "student")).family == "student"
    with RunReader(out / "distill") as run:
        assert run.status() == "finished" and not run.events("resume")   # a fresh run, not the old one resumed
