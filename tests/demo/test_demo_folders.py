"""The demo writes only into its own --out: a folder holding other files is refused before the first step
(exit 1, nothing written) unless --overwrite; its distillation replaces an earlier demo's run there, keeping
files the demo did not write."""

import pytest

from lab.cli import main
from lab.models.interface import FolderNotEmptyError


def test_demo_refuses_a_folder_that_is_not_a_demos_before_any_step(tmp_path, capsys):
    out = tmp_path / "docs"
    out.mkdir()
    (out / "thesis.tex").write_text("keep")
    assert main(["demo", "--quick", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "--overwrite" in err and "\n" not in err and "[1/8]" not in err
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


def test_demo_refuses_a_foreign_folder_where_it_writes_a_student(tmp_path):
    from lab.demo.pipeline import DEMO_MARKER, check_outputs
    out = tmp_path / "demo"
    (out / "student").mkdir(parents=True)
    (out / DEMO_MARKER).write_text("{}")
    check_outputs(out, overwrite=False)                 # an empty student folder is fine
    (out / "student" / "weights.pt").write_bytes(b"w")
    with pytest.raises(FolderNotEmptyError, match="student"):
        check_outputs(out, overwrite=False)
    check_outputs(out, overwrite=True)


def test_the_demos_distillation_replaces_its_earlier_run_and_keeps_other_files(tmp_path, sample_clips):
    from lab.demo.distill_step import distill_student
    from lab.models import load_decoder
    from lab.prune import prune
    from lab.runs.store import RunReader

    teacher = load_decoder("wan2.1-tiny", weights="random")
    student, _ = prune(teacher, {"up3": 0.5}, "independence", clips=["bbb-128"], frames=5, size=(32, 32))
    run = tmp_path / "distill"
    kw = dict(steps=3, frames=5, size=(32, 32), run_dir=run, val_clips=["bigbuckbunny"])
    _, info = distill_student(teacher, student, ["bbb-128"], **kw)
    assert info["status"] == "ok"
    (run / "notes.txt").write_text("keep")
    (run / "samples").mkdir(exist_ok=True)
    (run / "samples" / "mine.mp4").write_bytes(b"v")
    (tmp_path / "distill-init" / "notes.txt").write_text("keep")
    _, info = distill_student(teacher, student, ["bbb-128"], **kw)
    assert info["status"] == "ok"
    assert (run / "notes.txt").read_text() == "keep" and (run / "samples" / "mine.mp4").read_bytes() == b"v"
    assert (tmp_path / "distill-init" / "notes.txt").read_text() == "keep"
    with RunReader(run) as r:
        assert r.status() == "finished" and not r.events("resume")

    # Something else in the run's folder (not a run) is refused unless asked.
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.csv").write_text("1,2")
    with pytest.raises(FolderNotEmptyError, match="--overwrite"):
        distill_student(teacher, student, ["bbb-128"], **{**kw, "run_dir": other})
    assert [p.name for p in other.iterdir()] == ["data.csv"] and not (tmp_path / "other-init").exists()
