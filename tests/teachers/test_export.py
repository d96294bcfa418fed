"""Export: a diffusers folder in fp16 whose latent statistics normalize the encoder's latents."""

import json

import pytest
import torch

from lab import cards
from lab.data.clips import ClipSpec, ClipWindows
from lab.models.registry import load_decoder
from lab.teachers.config import TrainConfig
from lab.teachers.export import export, latent_stats
from lab.teachers.train import build_model

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.mark.parametrize("model, frames, crop", [("wan2.1-tiny", 5, 32), ("ltx-video-tiny", 9, 64)])
def test_export_writes_fp16_weights_and_latent_stats(tmp_path, bundled_clip_path, model, frames, crop):
    data = ClipWindows([ClipSpec("bbb", str(bundled_clip_path))], short_sides=(128,))
    cfg = TrainConfig.from_flags(model=model, frames=frames, crop=crop, eval_frames=frames)
    vae = build_model(cfg)
    # A random encoder has latents far from N(0, 1) in scale and offset: what the stats must undo.
    info = export(vae, cfg, tmp_path / model, data=data, step=0, wall_s=0.0, meta={"command": "test"},
                  eval_frames=frames)
    folder = tmp_path / model
    assert {p.name for p in folder.iterdir()} == {"config.json", "diffusion_pytorch_model.safetensors", "README.md",
                                                  "provenance.json", "lab_teacher.json"}
    from lab.teachers.card import teacher_card
    record = cards.read_provenance(folder)  # the record, and the card rendered from it
    assert (record["kind"], record["name"], record["step"], record["heldout"]) == ("teacher", model, 0, info["heldout"])
    assert record["train_commands"] == ["test --stop-at 0"] and record["latents_mean"] == info["latents_mean"]
    assert teacher_card(record).render() == (folder / "README.md").read_text()
    from safetensors.torch import load_file
    assert {t.dtype for t in load_file(folder / "diffusion_pytorch_model.safetensors").values()} == {torch.float16}
    card = (folder / "README.md").read_text()
    assert "CPU only" in card and "reduced scale" in card and "carphone" in card and f"{info['heldout']['carphone']['psnr']:.2f}" in card

    kind = "wan" if "wan" in model else "ltx"
    adapter = load_decoder(model if kind == "wan" else model, weights=str(folder))
    adapter = adapter.float() if hasattr(adapter, "float") else adapter
    # Normalized latents of the same windows the stats came from: per channel ~N(0, 1).
    gen = torch.Generator().manual_seed(1234)
    zs = []
    for _ in range(16):
        x = data.sample(1, 1 + 2 * (4 if kind == "wan" else 8), 64, gen)  # as latent_stats samples them
        zs.append(adapter.encode(x.to(adapter.dtype)).float().transpose(0, 1).flatten(1))
    z = torch.cat(zs, 1)
    assert z.mean(1).abs().max() < 0.05
    assert (z.std(1) - 1).abs().max() < 0.05
    if kind == "wan":
        saved = json.loads((folder / "config.json").read_text())
        mean, _ = latent_stats(vae.eval(), data, frame_multiple=4, spatial_multiple=8)
        assert saved["latents_mean"] == pytest.approx(mean, abs=1e-3)


def test_card_data_section_summarises_datasets_and_does_not_vouch_for_their_split():
    from lab.teachers.card import CARD_CLIPS, _clip_list, _held_out_text
    few = [f"c{i}.mp4" for i in range(3)]
    assert _clip_list(few) == "c0.mp4, c1.mp4, c2.mp4"
    many = [f"/data/v{i}.mp4" for i in range(CARD_CLIPS + 30)]
    text = _clip_list(many)
    assert text.startswith(f"{len(many)} files, e.g. /data/v0.mp4") and "/data/v20.mp4" not in text
    assert "frames 0-191" in _held_out_text({"clips": None, "manifest": None})  # the lab's own split
    custom = _held_out_text({"clips": ["/data/**/*.mp4"], "manifest": None})
    assert "cannot check" in custom and "frames 0-191" not in custom
    assert "`m.csv` whose split is not train" in _held_out_text({"clips": None, "manifest": "m.csv"})


def test_export_refuses_a_users_folder_unless_overwrite_and_keeps_its_other_files(tmp_path, bundled_clip_path):
    from lab.models.interface import FolderNotEmptyError
    from lab.teachers.export import check_export_target, is_exported_teacher
    data = ClipWindows([ClipSpec("bbb", str(bundled_clip_path))], short_sides=(128,))
    cfg = TrainConfig.from_flags(model="wan2.1-tiny", frames=5, crop=32, eval_frames=5)
    vae = build_model(cfg)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("# my notes\n")
    with pytest.raises(FolderNotEmptyError, match="--overwrite"):
        export(vae, cfg, mine, data=data, step=0, wall_s=0.0, meta={}, eval_frames=5)
    assert (mine / "README.md").read_text() == "# my notes\n" and len(list(mine.iterdir())) == 1
    with pytest.raises(FolderNotEmptyError):  # train() checks before its first step
        from lab.teachers.train import train
        train(TrainConfig.from_flags(model="wan2.1-tiny", frames=5, crop=32, steps=1, export_to=str(mine)), tmp_path / "run",
              data=data)
    assert not (tmp_path / "run").exists()
    (mine / "notes.txt").write_text("keep me")
    export(vae, cfg, mine, data=data, step=0, wall_s=0.0, meta={}, eval_frames=5, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep me" and is_exported_teacher(mine)
    check_export_target(mine)  # the lab's export now: a later export may replace it
    # Exports made before the marker existed (the shipped mini teachers) are recognised by their files and card.
    (mine / "notes.txt").unlink()
    (mine / "lab_teacher.json").unlink()
    assert is_exported_teacher(mine)
