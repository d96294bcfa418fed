"""No command reaches the network unless the user asked for it. The commands run as on a fresh
machine without network (no HF_HUB_OFFLINE, empty hub cache and metric-weights folder, every
connection refused and recorded): they succeed without trying, or say which file to supply. A hub
id or --allow-downloads is the user asking; those may try, and then say what to supply."""

import pytest
import torch

from lab.cli import COMMANDS


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(set(COMMANDS) - {"app"}))
def test_commands_do_not_reach_the_network(command, human_runs):
    r = human_runs[command]
    assert r["network"] == [], r["network"]
    assert r["rc"] == 0, r["stderr"][-2000:]


@pytest.mark.slow
def test_configured_perceptual_loss_reads_local_weights_only(human_runs):
    # tiny.toml's finetune phase weights an LPIPS loss: no download, and the warning names the file.
    r = human_runs["distill"]
    assert "vgg16-397923af.pth" in r["stderr"] and "LAB_ALLOW_DOWNLOADS" in r["stderr"]


@pytest.fixture(scope="module")
def asked(tmp_path_factory, cli_without_network):
    tmp = tmp_path_factory.mktemp("asked")
    torch.save(torch.randn(1, 16, 2, 4, 4), tmp / "z.pth")
    eval_lpips = ["eval", "--decoder", "wan2.1-tiny", "--weights", "random", "--video", "bbb-128", "--frames", "5",
                  "--size", "32x32", "--metrics", "psnr,lpips"]
    cases = {
        "lpips": eval_lpips,
        "lpips --allow-downloads": [*eval_lpips, "--allow-downloads"],
        "hub teacher": ["decode", "--decoder", "wan2.1", "--latents", str(tmp / "z.pth")],
        # a random full-size student's clip: its recorded teacher (wan2.1, the hub by default) is random too
        "random student's clip": ["decode", "--decoder", "wan2.1-flash", "--weights", "random", "--video", "bbb-128",
                                  "--frames", "5"],
    }
    return cli_without_network(cases, tmp)


@pytest.mark.slow
def test_metric_weights_are_not_downloaded_unasked(asked):
    r = asked["lpips"]
    assert r["network"] == []
    assert r["rc"] == 1 and "Traceback" not in r["stderr"]
    assert "vgg16-397923af.pth" in r["stderr"] and "LAB_ALLOW_DOWNLOADS=1 or --allow-downloads" in r["stderr"]


@pytest.mark.slow
def test_allowed_download_that_fails_says_what_to_supply(asked):
    r = asked["lpips --allow-downloads"]
    assert r["network"], "--allow-downloads should have tried the public URL"
    assert r["rc"] == 1 and "Traceback" not in r["stderr"]
    assert "download failed" in r["stderr"] and "put it at" in r["stderr"]


@pytest.mark.slow
def test_hub_teacher_offline_says_which_files(asked):
    r = asked["hub teacher"]
    assert r["rc"] == 1 and "Traceback" not in r["stderr"]
    assert "diffusion_pytorch_model.safetensors and config.json" in r["stderr"]


@pytest.mark.slow
def test_a_random_students_clip_is_encoded_by_a_random_teacher_offline(asked):
    r = asked["random student's clip"]
    assert r["network"] == [] and r["rc"] == 0, r["stderr"][-2000:]
    assert "wan2.1 encodes the clip" in r["stderr"]
