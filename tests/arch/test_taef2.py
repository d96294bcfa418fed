"""TAEF2 (madebyollin/taesd) as a lab family: the released weights load exactly and round-trip real frames
at the stated quality (shared weights; skipped without them), the stage and channel maps, exact pruning at
full width, independence/magnitude/random students, save/load, a short distillation, and the refusals
(no operator plans, no stream, missing weight files)."""

import pytest
import torch

from lab.analysis import analyze
from lab.arch import arch_of, get_architecture
from lab.data.samples import resolve_clip
from lab.data.video import load_clip
from lab.errors import ConfigError, LabError, WeightsNotFoundError
from lab.eval.metrics import psnr
from lab.models import load_decoder
from lab.models.registry import get_entry
from lab.families.taef2 import (DECODER_FILE, ENCODER_FILE, TAEF2, TAEF2DecoderAdapter, TAEF2StudentAdapter,
                                load_released)
from lab.prune import prune

Z = torch.randn(1, 32, 2, 4, 6, generator=torch.Generator().manual_seed(0))  # 2 frames of 32x48


@pytest.fixture(scope="module")
def random_taef2():
    torch.manual_seed(0)
    return load_decoder("taef2", weights="random")


@pytest.fixture(scope="module")
def released(shared_assets):
    folder = shared_assets / "weights" / "taef2"
    if not (folder / DECODER_FILE).is_file():
        pytest.skip(f"{folder} has no {DECODER_FILE}")
    return load_decoder("taef2", weights=str(folder))


def _clip(name, size, frames=2, start=0):
    return load_clip(resolve_clip(name), frames=frames, size=size, start=start, frame_multiple=1, spatial_multiple=8)


def test_stage_map_groups_and_catalog(random_taef2):
    t = random_taef2
    assert isinstance(t, TAEF2DecoderAdapter) and arch_of(t) is TAEF2 and get_architecture("taef2") is TAEF2
    assert t.geometry.compression == (1, 8, 8) and not t.causal
    stages = TAEF2.stages_of(t.vae)
    assert list(stages) == ["conv_in", "mid", "up0", "up1", "up2", "head"]
    assert stages["up0"] == ["decoder.6", "decoder.7", "decoder.8", "decoder.9", "decoder.10"]
    assert stages["head"] == ["decoder.19"]
    groups = {g.name: g for g in TAEF2.prune_groups(t.vae)}
    assert len(groups) == 4 + 2 * 10 and all(g.width == 64 for g in groups.values())
    mid = groups["mid.stream"]
    assert ("decoder.3.pool.3", "rows") in mid.producers and mid.consumers[-1].path == "decoder.7"
    assert groups["up2.stream"].consumers[-1].path == "decoder.19"
    assert TAEF2.flash_vaed_keep(TAEF2.num_up_blocks(t.vae)) == {"up1": 0.25, "up2": 0.25}
    # The released decoder: 1,338,499 parameters plus 1,152 zero biases.
    assert get_entry("taef2").decoder_params() == t.decoder_params() == 1_339_651
    out = t.decode(Z)
    assert out.shape == (1, 3, 2, 32, 48) and out.abs().max() <= 1
    # Frames are independent images: decoding one frame alone gives the same frame.
    assert torch.allclose(t.decode(Z[:, :, 1:]), out[:, :, 1:], atol=1e-6)


def test_pruning_is_exact_at_full_width_and_students_save_and_load(random_taef2, tmp_path):
    t = random_taef2
    full, _ = prune(t, 1.0, "independence", latents=[Z])
    assert torch.equal(full.decode(Z), t.decode(Z))
    s, info = prune(t, 0.25, "independence", latents=[Z])
    assert isinstance(s, TAEF2StudentAdapter) and s.vae.encoder is None
    assert info["widths"]["up2.stream"] == 16 and s.decoder_params() == 108_547
    assert "decoder.3.pool.0" in info["transfer"]["folded"]  # the fold reaches the pooled branch
    s.save(tmp_path / "s")
    back = load_decoder(str(tmp_path / "s"))
    assert isinstance(back, TAEF2StudentAdapter) and torch.equal(back.decode(Z), s.decode(Z))
    assert back.teacher_name == "taef2" and back.teacher_group_widths()["up2.stream"] == 64
    with pytest.raises(ConfigError, match="unknown plan 'flash-vaed' for TAEF2"):
        prune(t, 0.5, "magnitude", latents=[Z], operators="flash-vaed")
    with pytest.raises(LabError, match="not a causal decoder"):
        t.stream()


def test_missing_or_foreign_weight_files_are_named(tmp_path):
    with pytest.raises(WeightsNotFoundError, match=DECODER_FILE):
        load_released(tmp_path)
    torch.save({"0.weight": torch.zeros(2, 2)}, tmp_path / DECODER_FILE)
    torch.save({}, tmp_path / ENCODER_FILE)
    with pytest.raises(WeightsNotFoundError, match="not TAEF2 weights"):
        load_decoder("taef2", weights=str(tmp_path))


def test_distillation_runs_on_a_taef2_student(random_taef2, tmp_path):
    from lab.demo.distill_step import distill_student
    s, _ = prune(random_taef2, 0.5, "independence", latents=[Z])
    teacher = random_taef2.save(tmp_path / "teacher")  # the trainer loads this very teacher (no released weights)
    trained, info = distill_student(random_taef2, s, ["bbb-128"], steps=3, frames=2, size=(32, 32),
                                    run_dir=tmp_path / "run", teacher_source=str(teacher))
    assert info["status"] == "ok" and info["steps"] >= 1
    assert isinstance(trained, TAEF2StudentAdapter) and trained.decoder_params() == s.decoder_params()


def test_released_weights_load_exactly_and_round_trip_real_frames(released, shared_assets, sample_clips):
    raw = torch.load(shared_assets / "weights" / "taef2" / DECODER_FILE, map_location="cpu", weights_only=True)
    own = released.vae.state_dict()
    assert all(torch.equal(own[f"decoder.{k}"], v.float()) for k, v in raw.items())
    # The assets' figure: about 30 dB on real 512x288 frames.
    for clip, size, floor in (("bigbuckbunny", (288, 512), 30.0), ("carphone", (144, 176), 30.0)):
        v = _clip(clip, size)
        assert psnr(released.decode(released.encode(v)), v) > floor, clip


def test_released_decoder_independence_beats_magnitude_and_random(released, sample_clips):
    calib = [released.encode(_clip(c, (128, 128))) for c in ("bbb-128", "bigbuckbunny", "bikes")]
    analysis = analyze(released, calib)  # one analysis for every criterion: only the choice differs
    held = released.encode(_clip("carphone", (144, 176)))
    ref = released.decode(held)

    def score(crit, seed=0):
        s, _ = prune(released, 0.25, crit, analysis=analysis, seed=seed)
        return psnr(s.decode(held), ref)

    ind = score("independence")
    rnd = sum(score("random", k) for k in range(3)) / 3
    # Measured: about 19 dB against 10.6 (magnitude) and 11-12 (random) at this calibration.
    assert ind > score("magnitude") + 3 and ind > rnd + 3
