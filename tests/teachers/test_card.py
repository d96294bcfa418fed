"""One card writer (lab.cards) for every shipped model: the shape and shared sentences, the teacher's provenance
record and the card rendered from it, and what the lab's readers read back (the export's title check, the warm
start's commands: from the record, or from the card of an export made before records)."""

import json
import re

import pytest

from lab import cards
from lab.teachers.card import TITLE, provenance, teacher_card, write_card
from lab.teachers.config import TrainConfig

HELDOUT = {"carphone": {"frames": 17, "size": [144, 176], "psnr": 18.02, "ssim": 0.5224},
           "bikes-heldout": {"frames": 17, "size": [128, 128], "psnr": 17.39, "ssim": 0.4847}}
CPU = "CPU only (x86_64, 2 cores on the machine, 1 torch thread(s), cores shared with other jobs), float32"


def teacher_info(**over) -> dict:
    return {"model": "mini-wan", "class": "AutoencoderKLWan", "config": {"base_dim": 16, "z_dim": 16},
            "params_decoder": 2.06e6, "params_encoder": 1.54e6, "step": 197, "wall_s": 2178.0, "s_per_step": 11.05,
            "machine": CPU, "train_clips": ["bigbuckbunny[0:end]", "bikes[0:192]"], "train_scales": [128, 256],
            "recipe": TrainConfig.from_flags(model="mini-wan", frames=9, crop=48, steps=280, batch=2).flat(),
            "heldout": HELDOUT, "command": "python -m lab teacher train --model mini-wan --steps 280",
            "started": "2026-11-23 14:06:24 UTC", "init_from": None, "resumed": None, "weights_bytes": 7.2e6,
            **over}


def headings(text: str) -> list[str]:
    return re.findall(r"^## (.*)$", text, re.M)


def test_a_teacher_card_has_the_shared_shape_and_the_title_exports_are_recognised_by(tmp_path):
    record = write_card(tmp_path, teacher_info())
    text = (tmp_path / "README.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "provenance.json"]  # atomic: no temporary left
    assert json.loads((tmp_path / "provenance.json").read_text()) == record
    assert text.startswith(f"# mini-wan: {TITLE} (AutoencoderKLWan)\n") and 'Loaded by `load_decoder("mini-wan")`.' in text
    assert headings(text) == ["Data", "Recipe", "Held-out reconstruction (encode -> decode of the exported fp16 "
                              "weights, computed in float32)", "Latent statistics", "Reproduce"]
    assert f"Held out: {cards.LAB_SPLIT}." in text and "frames 0-191" in text
    assert "| carphone | 17 | 176x144 | 18.02 | 0.5224 |" in text
    assert "weights stored in fp16\n  (7.20 MB)" in text and "197 steps of 280 planned" in text
    assert "python -m lab ship --run RUN" in text  # the one command that ships every model


def test_the_cpu_caveat_and_the_target_verdict_say_what_the_run_was():
    cpu = teacher_card(provenance(teacher_info())).render()
    assert f"machine: {CPU}. {cards.CPU_NOTICE}: small crops" in cpu and "Below the lab's target of 28 dB" in cpu
    good = {c: {**m, "psnr": 30.0} for c, m in HELDOUT.items()}
    gpu = teacher_card(provenance(teacher_info(machine="NVIDIA H200 (bf16 autocast)", heldout=good))).render()
    assert "- machine: NVIDIA H200 (bf16 autocast).\n" in gpu and cards.CPU_NOTICE not in gpu and "Below" not in gpu


def test_the_warm_start_reads_the_whole_command_chain_from_the_record_or_an_old_export_s_card(tmp_path):
    from lab.teachers.warmstart import _export_commands
    earlier = "python -m lab teacher train --run runs/a --steps 1000"
    info = teacher_info(init_from={"source": "runs/a", "step": 1000, "command": earlier},
                        resumed=[{"command": "python -m lab teacher train --steps 280", "from_step": 63}])
    chain = [earlier, "python -m lab teacher train --model mini-wan --steps 280 --stop-at 63",
             "python -m lab teacher train --steps 280 --stop-at 197"]
    record = write_card(tmp_path, info)
    assert record["train_commands"] == chain and _export_commands(tmp_path).splitlines() == chain
    card = (tmp_path / "README.md").read_text()
    assert all(c in card for c in chain)                          # the card shows what the record holds
    (tmp_path / "provenance.json").unlink()                       # an export made before records: its card is read
    assert _export_commands(tmp_path).splitlines() == chain
    assert _export_commands(tmp_path / "absent") is None


GPU_RUN = {"steps": 317, "train_s": 240.0, "machine": "NVIDIA H200 (bf16 autocast)", "started": "2026-11-28 08:38:15 UTC",
           "command": "python -m lab teacher train --model mini-wan --device cuda --max-minutes 4.0"}


def test_a_warm_started_teacher_adds_up_the_minutes_of_every_run_behind_it(tmp_path):
    from lab.teachers.warmstart import export_history
    curve = [{"step": 0, "minutes": 0.0, "clips": {"carphone": {"psnr": 18.0}}},
             {"step": 150, "minutes": 16.7, "clips": {"carphone": {"psnr": 19.5}}}]
    info = teacher_info(init_from={"source": "data/checkpoints/mini-wan", "step": None, "command": GPU_RUN["command"],
                                   "history": [GPU_RUN]}, curve=curve, eval_every=150, curve_frames=49)
    record = write_card(tmp_path, info)
    card = (tmp_path / "README.md").read_text()
    assert "in all: 40.3 min of training over 2 runs (4.0 on NVIDIA H200, 36.3 on CPU)" in card  # 2178 s = 36.3 min
    assert "| 16.7 | 20.7 | 150 | 19.50 | 19.50 |" in card and "add the 4.0 min of the earlier run" in card
    # The next warm start from this export carries both runs on: GPU minutes add up across sessions.
    chain = export_history(tmp_path)
    assert [run["steps"] for run in chain] == [317, 197] and chain[1]["machine"] == CPU
    assert chain == export_history(tmp_path) and record["train_commands"][0] == GPU_RUN["command"]
    # One run: no in-all line, no extra column.
    alone = teacher_card(provenance(teacher_info(curve=curve, eval_every=150, curve_frames=49))).render()
    assert "in all:" not in alone and "minutes in all" not in alone and "| 16.7 | 150 |" in alone


def test_an_export_made_before_records_gives_its_run_from_its_card(tmp_path):
    from lab.teachers.warmstart import card_history, export_history
    write_card(tmp_path, teacher_info(machine="NVIDIA H200 (bf16 autocast)"))
    (tmp_path / "provenance.json").unlink()
    assert export_history(tmp_path) == [{"steps": 197, "train_s": 2178.0, "machine": "NVIDIA H200 (bf16 autocast)",
                                         "started": "2026-11-23 14:06:24 UTC",
                                         "command": "python -m lab teacher train --model mini-wan --steps 280 "
                                                    "--stop-at 197"}]
    (tmp_path / "README.md").write_text("# a user's own notes\n")
    assert card_history(tmp_path / "README.md") == [] and card_history(tmp_path / "absent.md") == []


def test_a_teacher_card_names_the_former_names_that_still_load_it():
    card = teacher_card(provenance(teacher_info())).render()
    assert "Formerly `mini-wan-w32`" in card and "still loads it" in card


def test_the_record_states_the_common_keys_and_the_card_renders_from_it_alone(tmp_path):
    record = write_card(tmp_path, teacher_info())
    assert record["format"] == cards.PROVENANCE_FORMAT and record["kind"] == "teacher" and record["teacher"] is None
    assert (record["name"], record["step"], record["wall_s"], record["machine"]) == ("mini-wan", 197, 2178.0, CPU)
    assert record["title"] == f"{TITLE} (AutoencoderKLWan)" and record["heldout"] == HELDOUT
    assert record["held_out"] == f"Held out: {cards.LAB_SPLIT}." and record["data"]["clips"][1] == "bikes[0:192]"
    assert record["train_commands"] == ["python -m lab teacher train --model mini-wan --steps 280 --stop-at 197"]
    # The card is a function of the file: rendered again from provenance.json alone, it is the same text.
    again = json.loads((tmp_path / "provenance.json").read_text())
    assert teacher_card(again).render() == (tmp_path / "README.md").read_text()
    # What the record says is what the card says, e.g. a machine the record names.
    edited = {**again, "machine": "NVIDIA H100"}
    assert "- machine: NVIDIA H100.\n" in teacher_card(edited).render()


def test_a_record_that_cannot_be_read_is_one_line_naming_the_fix(tmp_path):
    assert cards.read_provenance(tmp_path) is None
    (tmp_path / "provenance.json").write_text("{not json")
    with pytest.raises(cards.LabError, match=r"provenance.json cannot be read .*ship the model again") as err:
        cards.read_provenance(tmp_path)
    assert "\n" not in str(err.value)
    (tmp_path / "provenance.json").write_text('{"format": "something-else/9"}')
    with pytest.raises(cards.LabError, match="not a provenance record of this lab"):
        cards.read_provenance(tmp_path)


def test_the_shared_helpers():
    # The held-out table: one column per figure, a reference's columns beside them when given.
    heading, body = cards.heldout_section("how", HELDOUT)
    assert heading == "Held-out reconstruction (how)"
    lines = body.strip().splitlines()
    assert lines[1] == "|---|---|---|---|---|" and all(ln.count("|") == 6 for ln in lines)
    scores = {c: {**m, "teacher_psnr": 19.0, "teacher_ssim": 0.6} for c, m in HELDOUT.items()}
    lines = cards.heldout_section("how", scores, reference="mini-wan", intro="Why.")[1].strip().splitlines()
    assert lines[0] == "Why." and lines[2].endswith("| mini-wan PSNR | mini-wan SSIM |")
    assert all(ln.count("|") == 8 for ln in lines[2:]) and lines[-1].endswith("| 19.00 | 0.6000 |")
    # The lab's split holds for its own clips (with or without a frame range), not for a user's files.
    assert cards.held_out_text(None) == cards.held_out_text(["bbb-128", "bikes[0:192]"]) == f"Held out: {cards.LAB_SPLIT}."
    assert "cannot check" in cards.held_out_text(["bbb-128", "/videos/mine.mp4"])
    assert "`m.csv` whose split is not train" in cards.held_out_text(["bbb-128"], "m.csv")
    assert cards.machine("GPU (cuda:0)", "x") == "machine: GPU (cuda:0)."
    assert cards.describe_machine("cuda:1", 1) == "GPU (cuda:1)" and cards.describe_machine("cpu", 3).startswith("CPU only")
    assert cards.unrooted(f"{cards.paths.REPO_ROOT}/data/x missing") == "data/x missing"
    assert cards.shown(cards.paths.REPO_ROOT / "data" / "checkpoints" / "x") == "data/checkpoints/x"


def test_a_teacher_card_is_rendered_again_from_its_record(tmp_path):
    from lab.ship import rerender  # the same command renders every kind's card
    record = write_card(tmp_path, teacher_info())
    (tmp_path / "README.md").write_text("# mini-wan: an older card\n")
    assert rerender(tmp_path)["changed"] is True
    assert (tmp_path / "README.md").read_text() == teacher_card(record).render()
