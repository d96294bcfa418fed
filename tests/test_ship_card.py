"""python -m lab ship (lab.ship): a shipped student's provenance record and the card rendered from it through the
one card writer (lab.cards), read back by lab.eval.table (from the record, or from the card of a folder shipped
before records); teacher runs go through the same command, refusing what a teacher export cannot honour."""

import copy
import json
import re

import pytest

from lab import cards, paths
from lab.distill.config import load_config
from lab.errors import LabError
from lab.runs.store import RunStore
from lab.ship import (_selection, heldout_scores, machine, provenance, rerender, rescore, ship, shipped_folders,
                      student_card)

SCORES = {"carphone": {"psnr": 17.55, "ssim": 0.5045, "teacher_psnr": 18.02, "teacher_ssim": 0.5224, "frames": 17,
                       "size": [144, 176]},
          "bikes-heldout": {"psnr": 17.72, "ssim": 0.48, "teacher_psnr": 17.39, "teacher_ssim": 0.4847, "frames": 17,
                            "size": [128, 128]}}


def student_info(which="best", device="cpu", **data) -> dict:
    """What ``ship`` gathers about a run (its provenance record is ``provenance(student_info())``)."""
    config = "configs/lightweight/tae-64-wan.toml"
    cfg = load_config(paths.REPO_ROOT / config).to_dict()
    cfg["data"].update(data)
    cfg["device"] = device
    final = {"step": 480, "best_step": 300, "best_val_psnr": 18.06,
             "warnings": [f"perceptual loss disabled: {paths.REPO_ROOT}/data/metric_weights/vgg16.pth is missing"]}
    run = {"config": cfg, "final": final, "step": 480, "val_psnr": [(100, 17.0), (300, 18.06), (480, 15.85)]}
    return {**run, "name": "tae-64-wan", "run": "runs/lightweight/tae-64-wan", "config_path": config,
            "phases": [{"name": "train", "start": 0, "end": 480, "reason": "max_steps"}], "train_s": 918.0,
            "wall_s": 930.0, "started": "2026-11-23 16:35 UTC", "title": "lightweight decoder for mini-wan latents",
            "what": "Trained from scratch against the frozen encoder (METHOD.md section 2).",
            "load": 'load_decoder("tae-64-wan")', "decoder": {"description": "TAE-192 structure", "params": 1.246e6},
            "weights_dtype": "fp16", "weights_bytes": 2.5e6, "machine": machine(cfg), "which": which,
            "selection": _selection(which, run),
            "command": f"python -m lab distill --config {config} --out runs/lightweight/tae-64-wan --json",
            "heldout": SCORES}


def test_a_student_card_has_the_shared_shape_and_its_selection_line_is_read_back(tmp_path, monkeypatch):
    folder = tmp_path / "tae-64-wan"
    folder.mkdir()
    record = cards.write_shipped(folder, provenance(student_info()), student_card)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "provenance.json"]
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
    from lab.eval.table import provenance as weights_provenance
    line = weights_provenance(str(folder))
    assert line.startswith("tae-64-wan/README.md: These are the weights of the run's best validation step (300 of 480, "
                           "before the GAN term")
    assert record["selection"] in text                           # read from the record: the sentence the card shows
    # A folder shipped before provenance records: its card's selection line is read instead, to the same result.
    (folder / "provenance.json").unlink()
    assert weights_provenance(str(folder)) == line


def test_the_record_states_the_common_keys_and_the_card_renders_from_it_alone(tmp_path):
    record = cards.write_shipped(tmp_path, provenance(student_info()), student_card)
    assert record == json.loads((tmp_path / "provenance.json").read_text())
    assert (record["format"], record["kind"], record["name"], record["teacher"]) == \
        (cards.PROVENANCE_FORMAT, "student", "tae-64-wan", "mini-wan")
    assert record["held_out"] == f"Held out: {cards.LAB_SPLIT}, as for the mini teachers themselves."
    assert record["machine"].startswith("CPU only") and record["step"] == 480 and record["train_s"] == 918.0
    assert record["heldout"] == SCORES and record["data"]["val_clips"] == ["city"]
    assert record["train_commands"] == ["python -m lab distill --config configs/lightweight/tae-64-wan.toml --out "
                                        "runs/lightweight/tae-64-wan --json"]
    assert record["selection"].startswith("These are the weights of the run's best validation step")
    # Tuples (the validation series) come back as lists: the card rendered from the file is the card written.
    assert student_card(json.loads((tmp_path / "provenance.json").read_text())).render() == \
        (tmp_path / "README.md").read_text()


def test_a_gpu_run_carries_no_cpu_caveat():
    text = student_card(provenance(student_info(device="cuda"))).render()
    assert "- machine: GPU (cuda).\n" in text and cards.CPU_NOTICE not in text and "paper's scale" not in text


def test_a_users_dataset_is_not_vouched_for():
    text = student_card(provenance(student_info(clips=["/videos/**/*.mp4"], manifest="m.csv"))).render()
    assert "`/videos/**/*.mp4`, the train rows of `m.csv`." in text
    assert "`m.csv` whose split is not train were held out" in text and cards.LAB_SPLIT not in text
    cached = student_card(provenance(student_info(cache="data/cache/mini-wan"))).render()
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


def test_ship_writes_the_record_and_the_card_rendered_from_it(tmp_path, sample_clips):
    # The real command on a real (tiny) distillation run, the held-out clips scored at 5 frames (~10 s).
    from lab.distill import distill
    from lab.eval.table import provenance as weights_provenance
    from lab.models import load_decoder
    config = "configs/distill/tiny.toml"
    distill(load_config(paths.REPO_ROOT / config), tmp_path / "run")
    dest = tmp_path / "shipped"
    result = ship(tmp_path / "run", config, name="tiny-flash", dest=dest, frames=5)
    assert {p.name for p in dest.iterdir()} == {"config.json", "diffusion_pytorch_model.safetensors",
                                                "lab_decoder.json", "provenance.json", "README.md"}
    record = cards.read_provenance(dest)
    assert (record["kind"], record["name"], record["teacher"], record["step"]) == ("student", "tiny-flash",
                                                                                  "wan2.1-tiny", result["step"])
    assert record["heldout"] == result["heldout"] and set(record["heldout"]) == {"carphone", "bikes-heldout"}
    assert record["train_commands"] == [f"python -m lab distill --config {config} --out {tmp_path / 'run'} --json"]
    assert student_card(record).render() == (dest / "README.md").read_text()
    assert weights_provenance(str(dest)) == f"shipped/README.md: {record['selection']}"
    assert load_decoder(str(dest)).name == "tiny-flash"
    # --rescore measures the same table again (same teacher here, so the same figures) at the frames it was
    # scored at, and keeps the weights; the record lists the rescoring with the table it replaced
    weights = (dest / "diffusion_pytorch_model.safetensors").read_bytes()
    again = rescore(dest)
    assert again["heldout"] == record["heldout"] and again["before"] == record["heldout"]
    rescored = cards.read_provenance(dest)
    assert [r["before"] for r in rescored["rescored"]] == [record["heldout"]]
    assert rescored["heldout"]["carphone"]["frames"] == 5
    assert (dest / "diffusion_pytorch_model.safetensors").read_bytes() == weights
    assert student_card(rescored).render() == (dest / "README.md").read_text()


def test_a_rescored_card_gives_the_table_it_replaced_and_whose_teacher_trained_it(tmp_path, monkeypatch):
    folder = tmp_path / "tae-64-wan"
    cards.write_shipped(folder, provenance(student_info()), student_card)
    new = {clip: m | {"teacher_psnr": m["teacher_psnr"] + 1.5} for clip, m in SCORES.items()}
    asked = []
    monkeypatch.setattr("lab.ship.heldout_scores", lambda f, teacher, frames, weights, seed: asked.append(
        (teacher, frames, weights, seed)) or new)
    result = rescore(folder)
    assert asked == [("mini-wan", 17, None, 0)] and result["heldout"] == new and result["before"] == SCORES
    text = (folder / "README.md").read_text()
    assert "| carphone | 17 | 176x144 | 17.55 | 0.5045 | 19.52 | 0.5224 |" in text
    assert "after mini-wan was shipped again" in text
    assert "trained (from 2026-11-23 16:35 UTC) with the mini-wan of that time" in text
    assert "Before: carphone 17.55 dB (teacher 18.02); bikes-heldout 17.72 dB (teacher 17.39)." in text
    with pytest.raises(LabError, match="has no provenance.json"):
        rescore(tmp_path / "nothing")


def test_the_selection_line_says_whether_validation_looked_at_a_held_out_clip():
    clean = _selection("best", student_info(val_clips=["bigbuckbunny"]))
    assert "looked at bigbuckbunny, a clip neither trained on nor held out" in clean and "optimistic" not in clean
    leaky = _selection("best", student_info(val_clips=["carphone"]))
    assert "looked at carphone, so its held-out figures below are slightly optimistic" in leaky


SHIPPED_STUDENTS = ("mini-wan-flash", "mini-ltx-flash", "tae-64-wan", "tae-temporal-64-wan", "efficientvit-32-wan")


@pytest.mark.parametrize("name", SHIPPED_STUDENTS)
def test_each_shipped_student_carries_its_record_and_its_card_is_rendered_from_it(name):
    # The shipped decoders were written by `python -m lab ship`: the record is what code reads, the README
    # only its rendering. A card edited by hand, or a folder shipped without its record, fails here.
    folder = paths.checkpoints_dir() / name
    if not (folder / "config.json").is_file():
        pytest.skip(f"data/checkpoints/{name} is absent (trained weights)")
    record = cards.read_provenance(folder)
    assert record is not None, f"{folder} has no {cards.PROVENANCE_FILE}"
    assert (record["kind"], record["name"]) == ("student", name)
    assert set(record["heldout"]) == {"carphone", "bikes-heldout"}
    assert student_card(record).render() == (folder / "README.md").read_text()
    # paths inside the repository are stored relative to it: the record is rendered again in other checkouts
    text = (folder / cards.PROVENANCE_FILE).read_text()
    assert not re.search(r"/[^\s\"']*/(data|runs|configs|lab)/", text), re.search(r"\S*/(data|runs|configs)/\S*", text)


def test_rerender_writes_only_the_card_and_only_when_it_changed(tmp_path):
    folder = tmp_path / "tae-64-wan"
    record = cards.write_shipped(folder, provenance(student_info()), student_card)
    (folder / "weights.safetensors").write_bytes(b"weights")
    card = folder / "README.md"
    card.write_text("# an older card\n")
    assert rerender(folder) == {"name": "tae-64-wan", "folder": str(folder), "changed": True}
    assert card.read_text() == student_card(record).render()
    assert cards.read_provenance(folder) == record and (folder / "weights.safetensors").read_bytes() == b"weights"
    before = card.stat().st_mtime_ns
    assert rerender(folder)["changed"] is False and card.stat().st_mtime_ns == before
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "provenance.json", "weights.safetensors"]


def test_rerender_refuses_a_folder_the_lab_did_not_ship_and_leaves_its_readme(tmp_path):
    (tmp_path / "README.md").write_text("the user's own notes")
    with pytest.raises(LabError, match="has no provenance.json"):
        rerender(tmp_path)
    assert (tmp_path / "README.md").read_text() == "the user's own notes"
    with pytest.raises(LabError, match="no shipped model folder"):
        shipped_folders(["no-such-model"])


def test_rerender_all_is_every_folder_with_a_record(tmp_path, monkeypatch):
    for name in ("a", "b"):
        cards.write_shipped(tmp_path / name, provenance(student_info()), student_card)
    (tmp_path / "notes").mkdir()  # no record: not the lab's
    monkeypatch.setattr(paths, "checkpoints_dir", lambda: tmp_path)
    assert shipped_folders(["all"]) == [tmp_path / "a", tmp_path / "b"]
    assert shipped_folders(["all"], kind="student") == [tmp_path / "a", tmp_path / "b"]  # --rescore all
    with pytest.raises(LabError, match="no shipped teacher with a provenance.json"):
        shipped_folders(["all"], kind="teacher")
    assert shipped_folders([str(tmp_path / "notes")]) == [tmp_path / "notes"]  # a folder path as given


def test_the_gan_sentence_gives_the_best_step_with_the_gan_on():
    from lab.ship import _gan_effect
    cfg = student_info()["config"]  # GAN from step 1360
    text = _gan_effect(cfg, [(1300, 15.0), (1350, 14.75), (1400, 14.9), (2700, 15.26), (3000, 15.26), (3320, 14.7)],
                       3320)
    assert "14.75 dB at step 1350 (last evaluation before the GAN term; best before it 15.00 dB)" in text
    assert "14.70 dB at step 3320 with it (best with it 15.26 dB at step 2700)" in text
    assert "the GAN term costs PSNR by the end of the run" in text
    assert "does not cost PSNR here" in _gan_effect(cfg, [(1350, 15.0), (1400, 15.2)], 1400)


def test_a_run_moved_after_it_finished_names_its_files_where_they_are_now():
    from lab.ship import _moved
    final = {"out": "/tmp/x/run", "best": "/tmp/x/run/best", "store": "/tmp/x/run/store.sqlite", "step": 3,
             "other": "/tmp/x/run2/best", "warnings": ["see /tmp/x/run/best"]}
    assert _moved(final, "/tmp/x/run", "runs/lightweight/run") == {
        "out": "runs/lightweight/run", "best": "runs/lightweight/run/best", "step": 3,
        "store": "runs/lightweight/run/store.sqlite", "other": "/tmp/x/run2/best",  # another folder: as it was
        "warnings": ["see /tmp/x/run/best"]}                                      # prose: as written
    assert _moved(final, "/tmp/x/run", "/tmp/x/run") is final  # shipped from where it ran: as recorded


def test_a_student_fine_tuned_from_a_shipped_decoder_names_it_and_the_commands_that_made_it(tmp_path, monkeypatch):
    # A config whose student.folder is a shipped decoder (its own weights) fine-tunes it: the new card must say so
    # and reproduce both runs, since shipping replaces that folder. Read from the folder's record.
    from lab.ship import warm_start
    monkeypatch.setattr(paths, "checkpoints_dir", lambda: tmp_path)
    cards.write_shipped(tmp_path / "tae-64-wan", provenance(student_info()), student_card)
    init = warm_start({"folder": "tae-64-wan"})
    # it shipped its best validation step (300) of a 480-step run
    assert (init["name"], init["step"], init["weights_step"], init["started"]) == ("tae-64-wan", 480, 300,
                                                                                   "2026-11-23 16:35 UTC")
    assert init["commands"] == [
        "python -m lab distill --config configs/lightweight/tae-64-wan.toml --out runs/lightweight/tae-64-wan --json",
        "python -m lab ship --run runs/lightweight/tae-64-wan --config configs/lightweight/tae-64-wan.toml "
        "--name tae-64-wan --weights best"]
    assert warm_start({"folder": "tae-64-wan", "weights": "random"}) is None and warm_start({"keep": 0.25}) is None
    (tmp_path / "elsewhere").mkdir()
    assert warm_start({"folder": str(tmp_path / "elsewhere")})["commands"] == []  # no record: nothing to vouch for

    info = student_info(which="last") | {"init_from": init, "step": 250, "run": "runs/lightweight/tae-64-wan-long",
                                         "config_path": "configs/lightweight/tae-64-wan-long.toml"}
    info["what"] = "Fine-tuned from `tae-64-wan` as shipped then (step 300 of its 480-step run)."
    text = student_card(cards.write_shipped(tmp_path / "new", provenance(info), student_card)).render()
    assert "250 steps (train 0-480), after the 300 steps of `tae-64-wan` it started from" in text
    reproduce = text.split("## Reproduce", 1)[1]
    assert reproduce.index(f"Warm-started from `{init['folder']}` as shipped then (step 300 of its 480-step run") < reproduce.index(
        init["commands"][0]) < reproduce.index(init["commands"][1]) < reproduce.index(
        "--config configs/lightweight/tae-64-wan-long.toml")


def test_a_student_card_says_when_its_recipe_froze_batch_norms_or_weighted_the_first_frame():
    plain = student_card(provenance(student_info())).render()
    assert "Batch norms frozen" not in plain and "first frame" not in plain
    info = student_info()
    info["config"] = {**info["config"], "first_frame_weight": 4.0,
                      "student": {**info["config"]["student"], "norm_stats": "frozen"}}
    card = student_card(provenance(info)).render()
    assert "Batch norms frozen (`student.norm_stats = \"frozen\"`)" in card
    assert "weigh each window's first frame 4x (`first_frame_weight`)" in card
