"""python -m lab ship (lab.ship): a shipped student's card through the one card writer (lab.cards), read back
by lab.eval.table; teacher runs go through the same command, refusing what a teacher export cannot honour."""

import copy
import re

import pytest

from lab import cards, paths
from lab.distill.config import load_config
from lab.errors import LabError
from lab.runs.store import RunStore
from lab.ship import _selection, heldout_scores, ship, student_card

SCORES = {"carphone": {"psnr": 17.55, "ssim": 0.5045, "teacher_psnr": 18.02, "teacher_ssim": 0.5224, "frames": 17,
                       "size": [144, 176]},
          "bikes-heldout": {"psnr": 17.72, "ssim": 0.48, "teacher_psnr": 17.39, "teacher_ssim": 0.4847, "frames": 17,
                            "size": [128, 128]}}


def student_info(which="best", **data) -> dict:
    config = "configs/lightweight/tae-64-wan.toml"
    cfg = load_config(paths.REPO_ROOT / config).to_dict()
    cfg["data"].update(data)
    final = {"step": 480, "best_step": 300, "best_val_psnr": 18.06,
             "warnings": [f"perceptual loss disabled: {paths.REPO_ROOT}/data/metric_weights/vgg16.pth is missing"]}
    run = {"config": cfg, "final": final, "step": 480, "val_psnr": [(100, 17.0), (300, 18.06), (480, 15.85)]}
    return {**run, "name": "tae-64-wan", "run": "runs/lightweight/tae-64-wan", "config_path": config,
            "phases": [{"name": "train", "start": 0, "end": 480, "reason": "max_steps"}], "train_s": 918.0,
            "wall_s": 930.0, "started": "2026-11-23 16:35 UTC", "title": "lightweight decoder for mini-wan latents",
            "what": "Trained from scratch against the frozen encoder (METHOD.md section 2).",
            "load": 'load_decoder("tae-64-wan")', "decoder": {"description": "TAE-192 structure", "params": 1.246e6},
            "weights_dtype": "fp16", "weights_bytes": 2.5e6, "which": which, "selection": _selection(which, run),
            "command": f"python -m lab distill --config {config} --out runs/lightweight/tae-64-wan --json",
            "heldout": SCORES}


def test_a_student_card_has_the_shared_shape_and_its_selection_line_is_read_back(tmp_path, monkeypatch):
    folder = tmp_path / "tae-64-wan"
    folder.mkdir()
    cards.write_card(folder / "README.md", student_card(student_info()))
    text = (folder / "README.md").read_text()
    assert text.startswith("# tae-64-wan: lightweight decoder for mini-wan latents\n")
    assert re.findall(r"^## (.*)$", text, re.M) == ["Data", "Recipe", "Held-out reconstruction (the shipped weights, "
                                                    "computed in float32)", "Reproduce"]
    assert f"Held out: {cards.LAB_SPLIT}, as for the mini teachers themselves." in text
    assert "| carphone | 17 | 176x144 | 17.55 | 0.5045 | 18.02 | 0.5224 |" in text
    assert "python -m lab ship --run runs/lightweight/tae-64-wan --config configs/lightweight/tae-64-wan.toml " \
           "--name tae-64-wan --weights best\n" in text
    assert "- perceptual loss disabled: data/metric_weights/vgg16.pth is missing" in text  # repository paths
    assert "machine: CPU only" in text and cards.CPU_NOTICE in text
    from lab.eval.table import provenance
    assert provenance(str(folder)).startswith("tae-64-wan/README.md: These are the weights of the run's best "
                                              "validation step (300 of 480, before the GAN term")


def test_a_gpu_run_carries_no_cpu_caveat():
    info = student_info()
    info["config"]["device"] = "cuda"
    text = student_card(info).render()
    assert "- machine: GPU (cuda).\n" in text and cards.CPU_NOTICE not in text and "paper's scale" not in text


def test_a_users_dataset_is_not_vouched_for():
    text = student_card(student_info(clips=["/videos/**/*.mp4"], manifest="m.csv")).render()
    assert "`/videos/**/*.mp4`, the train rows of `m.csv`." in text
    assert "`m.csv` whose split is not train were held out" in text and cards.LAB_SPLIT not in text
    cached = student_card(student_info(cache="data/cache/mini-wan")).render()
    assert "latent cache `data/cache/mini-wan`" in cached and "on the fly" not in cached and "cannot check" in cached


def test_ship_scores_against_the_teacher_weights_the_run_distilled_from(monkeypatch):
    asked = []

    def load(name, weights=None, **kw):
        asked.append((name, weights))
        raise RuntimeError("enough")
    monkeypatch.setattr("lab.ship.load_decoder", load)
    with pytest.raises(RuntimeError, match="enough"):
        heldout_scores(paths.REPO_ROOT, "wan2.1-tiny", teacher_weights="runs/teachers/x")
    assert asked == [("wan2.1-tiny", "runs/teachers/x")]


def test_ship_tells_a_teacher_run_from_a_distillation_run(tmp_path):
    with pytest.raises(LabError, match="no store.sqlite"):
        ship(tmp_path / "nothing", "x.toml")
    RunStore.create(tmp_path / "distill", copy.deepcopy(student_info()["config"])).close()
    with pytest.raises(LabError, match="pass --config"):
        ship(tmp_path / "distill")
    RunStore.create(tmp_path / "teacher", {"model": "mini-wan"}, kind="teacher").close()
    with pytest.raises(LabError, match=r"drop --config .*; --weights best .*; --fp32 .*; --name other"):
        ship(tmp_path / "teacher", "x.toml", name="other", fp16=False, which="best")


def test_the_selection_line_says_whether_validation_looked_at_a_held_out_clip():
    clean = _selection("best", student_info(val_clips=["bigbuckbunny"]))
    assert "looked at bigbuckbunny, a clip neither trained on nor held out" in clean and "optimistic" not in clean
    leaky = _selection("best", student_info(val_clips=["carphone"]))
    assert "looked at carphone, so its held-out figures below are slightly optimistic" in leaky
