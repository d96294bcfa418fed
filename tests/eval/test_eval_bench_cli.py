"""``python -m lab eval`` and ``python -m lab bench`` end to end on the tiny test models, through
lab.cli.main with --json."""

import json

import pytest
import torch

from lab.cli import main


def _run(capsys, argv):
    rc = main([*argv, "--json"])
    out = capsys.readouterr().out
    return rc, json.loads(out)


def test_eval_teacher(capsys):
    rc, r = _run(capsys, ["eval", "--decoder", "wan2.1-tiny", "--video", "bbb-128", "--frames", "9",
                          "--size", "32x32", "--metrics", "psnr,ssim,temporal"])
    assert rc == 0
    assert r["teacher"] == "wan2.1-tiny" and r["video_shape"] == [1, 3, 9, 32, 32]
    assert r["latents_shape"] == [1, 16, 3, 4, 4]
    assert 0 < r["psnr"] < 60 and -1 <= r["ssim"] <= 1 and r["temporal"] >= 0
    assert "vs_teacher" not in r and "vmaf" not in r


def test_eval_names_the_runtime_that_decoded(capsys):
    rc, r = _run(capsys, ["eval", "--decoder", "wan2.1-tiny@fused+subpixel", "--video", "bbb-128", "--frames", "9",
                          "--size", "32x32", "--metrics", "psnr"])
    assert rc == 0 and r["decoder"] == "wan2.1-tiny@fused+subpixel" and 0 < r["psnr"] < 60


def test_eval_student_against_teacher(capsys, tmp_path):
    # A "student": the tiny Wan architecture with perturbed weights, saved as a lab folder.
    from lab.models import load_decoder
    torch.manual_seed(0)
    student = load_decoder("wan2.1-tiny")
    with torch.no_grad():
        for p in student.vae.decoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    folder = student.save(tmp_path / "student")
    rc, r = _run(capsys, ["eval", "--decoder", str(folder), "--teacher", "wan2.1-tiny", "--video", "bbb-128",
                          "--frames", "5", "--size", "32x32", "--metrics", "psnr,ssim,vmaf"])
    assert rc == 0
    assert set(r["vs_teacher"]) == set(r["teacher_vs_clip"]) == {"psnr", "ssim", "vmaf", "psnr_by_latent_frame"}
    # 5 frames of a t=4 VAE: latent frame 0 gives frame 0, latent frame 1 frames 1-4 (where a long decode drifts)
    assert len(r["psnr_by_latent_frame"]) == len(r["vs_teacher"]["psnr_by_latent_frame"]) == 2
    assert min(r["psnr_by_latent_frame"]) <= r["psnr"] <= max(r["psnr_by_latent_frame"])
    assert r["retention"] == pytest.approx(r["psnr"] / r["teacher_vs_clip"]["psnr"])
    assert r["psnr_drop_db"] == pytest.approx(r["teacher_vs_clip"]["psnr"] - r["psnr"])  # the ratio's drop in dB
    assert r["vs_teacher"]["psnr"] > 0
    assert "upscaled to 1080 lines" in r["vmaf_note"]  # VMAF at its model's viewing size, and said so
    from lab.cli.eval import render
    text = render(r)
    assert "dB below the teacher" in text or "dB above the teacher" in text
    assert "PSNR dB (higher better)" in text and r["vmaf_note"] in text
    curve = " ".join(f"{v:.1f}" for v in r["vs_teacher"]["psnr_by_latent_frame"])
    assert "PSNR dB by latent frame (0, 1, ...):" in text and f"vs wan2.1-tiny: {curve}" in text


def test_eval_errors(capsys):
    rc, r = _run(capsys, ["eval", "--decoder", "wan2.1-tiny", "--video", "bbb-128", "--metrics", "psnr,bogus"])
    assert rc == 1 and "bogus" in r["error"]
    rc, r = _run(capsys, ["eval", "--decoder", "wan2.1-tiny", "--teacher", "ltx-video-tiny", "--video", "bbb-128",
                          "--frames", "9", "--metrics", "psnr"])
    assert rc == 1 and "pair a decoder with its own teacher" in r["error"]


def test_bench_two_decoders(capsys):
    rc, r = _run(capsys, ["bench", "--decoders", "ltx-video-tiny,wan2.1-tiny", "--weights", "random",
                          "--frames", "9", "--size", "32x32", "--repeats", "2", "--warmup", "1", "--no-memory"])
    assert rc == 0 and r["device"] == "cpu"
    a, b = r["decoders"]
    assert a["decoder"] == "ltx-video-tiny" and a["speedup"] == 1.0
    assert b["speedup"] == pytest.approx(a["seconds"] / b["seconds"])
    for row in (a, b):
        assert row["seconds"] > 0 and row["fps"] == pytest.approx(9 / row["seconds"])
        assert row["macs"] > 0 and row["decoder_params"] > 0 and len(row["times"]) == 2
    assert b["latents_shape"] == [1, 16, 3, 4, 4] and a["latents_shape"] == [1, 128, 2, 1, 1]


def test_cpu_peak_memory_probe():
    # A fresh process: its peak RSS holds torch and the weights, and the decode adds its working
    # set (ltx-video-tiny at 17x128x128 keeps ~35 MB of 32-channel full-resolution activations).
    from lab.eval.bench import cpu_peak_memory
    m = cpu_peak_memory("ltx-video-tiny", "random", "fp32", 17, (128, 128))
    assert m["peak_reset"] and 100e6 < m["peak_mem_bytes"] < 64e9
    assert m["peak_mem_bytes"] == m["rss_before_decode"] + m["decode_mem_bytes"]
    assert m["decode_mem_bytes"] > 10e6


def test_bench_bad_frames(capsys):
    rc, r = _run(capsys, ["bench", "--decoders", "wan2.1-tiny", "--frames", "8", "--size", "32x32", "--no-memory"])
    assert rc == 1 and "1 + 4k frames" in r["error"]
