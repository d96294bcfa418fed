"""Latent anchoring and the decoder-only fine-tune: the anchor latents are block means in the encoder's
latent geometry, the trainer uses them for exactly the first ``anchor_steps`` steps, and a frozen encoder
does not move."""


import pytest
import torch

from lab.data.clips import ClipSpec, ClipWindows
from lab.errors import LabError
from lab.runs.store import RunReader
from lab.teachers.anchor import anchor_fold, anchor_latents
from lab.teachers.config import TrainConfig, get_preset
from lab.teachers.train import build_model, train


@pytest.mark.parametrize("model,frames,size", [("wan2.1-tiny", 9, 32), ("ltx-video-tiny", 17, 64)])
def test_anchor_latents_have_the_encoders_geometry(model, frames, size):
    cfg = TrainConfig.from_flags(model=model)
    preset = get_preset(model)
    x = torch.rand(1, 3, frames, size, size) * 2 - 1
    with torch.no_grad():
        mean = build_model(cfg).encode(x).latent_dist.mean
    z = anchor_latents(x, preset.frame_multiple, preset.spatial_multiple, mean.shape[1])
    assert z.shape == mean.shape


def test_anchor_latents_are_block_means():
    # LTX geometry: t8, s32, 128 channels -> r = 4 (48 used channels: 3 colours x 16 sub-blocks).
    assert anchor_fold(32, 128) == 4 and anchor_fold(8, 16) == 2 and anchor_fold(8, 3) == 1
    x = torch.zeros(1, 3, 9, 32, 64)
    x[:, 0, 0] = 0.5                 # frame 0, red: latent frame 0 only
    x[:, 1, 1:, :, 32:] = -1.0       # frames 1-8, green, right latent pixel only
    x[:, 2, 1:5, :8, :8] = 1.0       # frames 1-4, blue, top-left 8x8 sub-block: half the group's mean
    z = anchor_latents(x, 8, 32, 128)
    assert z.shape == (1, 128, 2, 1, 2)
    red, green, blue = z[0, 0:16], z[0, 16:32], z[0, 32:48]
    assert torch.allclose(red[:, 0], torch.full((16, 1, 2), 0.5)) and red[:, 1].abs().max() == 0
    assert torch.allclose(green[:, 1, 0, 1], torch.full((16,), -1.0)) and green[:, :, :, 0].abs().max() == 0
    assert blue[0, 1, 0, 0] == pytest.approx(0.5) and blue[1:].abs().max() == 0 and blue[0, 0].abs().max() == 0
    assert z[0, 48:].abs().max() == 0  # channels past 3 r^2 stay zero


def test_anchor_latents_reject_a_clip_off_the_grid():
    with pytest.raises(LabError, match="multiples of 32"):
        anchor_latents(torch.zeros(1, 3, 9, 48, 64), 8, 32, 128)
    with pytest.raises(LabError, match="1\\+8k"):
        anchor_latents(torch.zeros(1, 3, 8, 32, 32), 8, 32, 128)


def test_trainer_anchors_the_first_steps_only(tmp_path, bundled_clip_path):
    data = ClipWindows([ClipSpec("bbb", str(bundled_clip_path))], short_sides=(64,))
    cfg = TrainConfig.from_flags(model="ltx-video-tiny", steps=4, batch=1, frames=9, crop=64, lr=3e-4, warmup=1, threads=1,
                      anchor_steps=2, log_every=1, checkpoint_minutes=60.0)
    train(cfg, tmp_path / "run", data=data)
    with RunReader(tmp_path / "run") as r:
        logged = r.scalars(["train/loss", "train/anchor"])
    assert [s for s, _ in logged["train/loss"]] == [1, 2, 3, 4]
    assert [s for s, _ in logged["train/anchor"]] == [1, 2] and all(v > 0 for _, v in logged["train/anchor"])
    with pytest.raises(LabError, match="different anchor_steps"):
        train(TrainConfig.from_dict({**cfg.to_dict(), "anchor_steps": 0, "steps": 5}), tmp_path / "run", data=data)
    with pytest.raises(LabError, match="anchor-steps"):
        TrainConfig.from_flags(model="mini-ltx", frames=9, crop=64, anchor_steps=-1).validate()


def test_freeze_encoder_trains_the_decoder_only(tmp_path, bundled_clip_path):
    from lab.teachers.checkpoint import load_state
    data = ClipWindows([ClipSpec("bbb", str(bundled_clip_path))], short_sides=(64,))
    base = dict(model="wan2.1-tiny", steps=2, batch=1, frames=5, crop=32, lr=1e-3, warmup=1, threads=1,
                checkpoint_minutes=60.0)
    train(TrainConfig.from_flags(**base), tmp_path / "first", data=data)
    train(TrainConfig.from_flags(**{**base, "steps": 3}, init_from=str(tmp_path / "first"), freeze_encoder=True),
          tmp_path / "second", data=data)
    before, after = load_state(tmp_path / "first")["model"], load_state(tmp_path / "second")["model"]
    frozen = [k for k in before if k.startswith(("encoder.", "quant_conv."))]
    trained = [k for k in before if k.startswith("decoder.") and k.endswith("weight")]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in trained)
    with pytest.raises(LabError, match="--init-from"):
        TrainConfig.from_flags(**base, freeze_encoder=True).validate()


def test_a_decoder_only_export_keeps_the_latent_statistics_it_started_from(tmp_path, bundled_clip_path, sample_clips):
    # Measured again on the run's own windows, the statistics moved every normalised latent (mini-wan fine-tuned on
    # 33-frame windows: its means changed sign, and decoders of mini-wan latents fell from ~19 to ~11 dB).
    import json

    from lab.teachers.export import export_run
    data = ClipWindows([ClipSpec("bbb", str(bundled_clip_path))], short_sides=(64,))
    # wan_clip off: an export measures latent statistics on the run's clips, and CI has no ../shared
    base = dict(model="wan2.1-tiny", steps=2, batch=1, frames=5, crop=32, lr=1e-3, warmup=1, threads=1,
                checkpoint_minutes=60.0, wan_clip=False)
    train(TrainConfig.from_flags(**base), tmp_path / "first", data=data)
    export_run(tmp_path / "first", tmp_path / "first-export", eval_frames=5)
    shipped = json.loads((tmp_path / "first-export" / "config.json").read_text())
    shipped["latents_mean"] = [v + 0.5 for v in shipped["latents_mean"]]  # no second measurement lands here
    (tmp_path / "first-export" / "config.json").write_text(json.dumps(shipped))
    for frozen in (True, False):
        run = tmp_path / f"second-{frozen}"
        train(TrainConfig.from_flags(**{**base, "steps": 3, "frames": 9}, init_from=str(tmp_path / "first-export"),
                                     freeze_encoder=frozen), run, data=data)
        info = export_run(run, tmp_path / f"export-{frozen}", eval_frames=5)
        cfg = json.loads((tmp_path / f"export-{frozen}" / "config.json").read_text())
        card = (tmp_path / f"export-{frozen}" / "README.md").read_text()
        # the export names both runs behind its weights, with their steps: minutes add up over warm starts
        assert [run["steps"] for run in info["history"]] == [2, 3] and "over 2 runs" in card
        if frozen:
            assert cfg["latents_mean"] == pytest.approx(shipped["latents_mean"], abs=1e-4)
            assert cfg["latents_std"] == pytest.approx(shipped["latents_std"], abs=1e-4)
            assert info["latents_kept_from"] == str(tmp_path / "first-export") and "was frozen" in card
        else:  # a run that trains its encoder has a latent space of its own: measured
            assert cfg["latents_mean"] != pytest.approx(shipped["latents_mean"], abs=1e-2)
            assert info["latents_kept_from"] is None and "16 random training windows" in card
