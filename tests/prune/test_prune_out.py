"""``python -m lab prune --out DIR`` never deletes files it did not write: a folder that is not a decoder the
lab saved is refused before the pruning (exit 1, one line naming --overwrite); --overwrite writes the
student's files into it and keeps the others; an earlier student in DIR is replaced."""

from lab.cli import main
from lab.models import load_decoder

PRUNE = ["prune", "--teacher", "wan2.1-tiny", "--weights", "random", "--keep", "up3=0.5", "--frames", "5",
         "--size", "32x32"]


def test_prune_refuses_a_folder_it_did_not_write_and_keeps_its_files(tmp_path, capsys):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"jpeg")
    (out / "config.json").write_text('{"camera": 1}')
    assert main([*PRUNE, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--overwrite" in err and "\n" not in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "holiday.jpg"]
    assert (out / "config.json").read_text() == '{"camera": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]

    assert main([*PRUNE, "--out", str(out), "--overwrite"]) == 0
    assert (out / "holiday.jpg").read_bytes() == b"jpeg"
    assert load_decoder(str(out)).family == "student"


def test_prune_replaces_its_own_student(tmp_path):
    out = tmp_path / "s"
    assert main([*PRUNE, "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    assert main([*PRUNE, "--criterion", "magnitude", "--out", str(out)]) == 0
    assert load_decoder(str(out)).vae.config.criterion == "magnitude"
    assert (out / "notes.txt").read_text() == "mine"
