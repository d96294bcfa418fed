"""``VideoDecoder.save`` writes like diffusers' save_pretrained: into a folder, removing only files it writes;
a folder the lab did not write is refused unless asked (overwrite); an interrupted save never leaves the
folder missing."""

import os
import subprocess
import sys

import pytest
import torch

from lab import files
from lab.models import load_decoder
from lab.models.interface import FolderNotEmptyError


@pytest.fixture(scope="module")
def decoder():
    return load_decoder("wan2.1-tiny", weights="random")


def _loads(folder) -> bool:
    z = torch.randn(1, 16, 2, 4, 4)
    return load_decoder(str(folder)).decode(z).shape == (1, 3, 5, 32, 32)


def test_a_folder_the_lab_did_not_write_is_refused_and_left_alone(decoder, tmp_path):
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "config.json").write_text('{"mine": true}')
    (mine / "sub" / "data.txt").write_text("keep")
    with pytest.raises(FolderNotEmptyError, match="--overwrite") as err:
        decoder.save(mine)
    assert "\n" not in str(err.value)
    assert (mine / "config.json").read_text() == '{"mine": true}' and (mine / "sub" / "data.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]          # no temporary folder left behind
    (tmp_path / "file").write_text("x")
    with pytest.raises(FolderNotEmptyError, match="is a file"):
        decoder.save(tmp_path / "file", overwrite=True)


def test_overwrite_writes_the_decoder_files_and_keeps_the_others(decoder, tmp_path):
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("keep")
    (mine / "sub" / "data.txt").write_text("keep")
    decoder.save(mine, overwrite=True)
    assert _loads(mine)
    assert (mine / "notes.txt").read_text() == "keep" and (mine / "sub" / "data.txt").read_text() == "keep"


def test_a_decoder_the_lab_saved_is_replaced_and_only_its_files_change(decoder, tmp_path):
    folder = decoder.save(tmp_path / "m")
    (folder / "README.md").write_text("a card the user wrote")
    (folder / "diffusion_pytorch_model-00001-of-00002.safetensors").write_bytes(b"an old shard")  # a lab file
    decoder.save(folder)                                                   # no overwrite needed: it is ours
    assert _loads(folder) and (folder / "README.md").read_text() == "a card the user wrote"
    assert not (folder / "diffusion_pytorch_model-00001-of-00002.safetensors").exists()
    (tmp_path / "empty").mkdir()
    assert _loads(decoder.save(tmp_path / "empty"))                        # an empty folder is fine too


@pytest.mark.parametrize("swap", [True, False], ids=["atomic-swap", "file-by-file"])
def test_a_save_interrupted_at_any_rename_leaves_a_loadable_folder(decoder, tmp_path, monkeypatch, swap):
    folder = decoder.save(tmp_path / "last")
    if not swap:  # as on an OS or filesystem that cannot swap two folders
        monkeypatch.setattr(files, "exchange_paths", lambda a, b: False)
    real = {"rename": os.rename, "replace": os.replace}
    for fail_at in range(1, 10):
        calls = {"n": 0}

        def counted(name):
            def op(*args, **kwargs):
                calls["n"] += 1
                if calls["n"] == fail_at:
                    raise KeyboardInterrupt("killed")
                return real[name](*args, **kwargs)
            return op
        monkeypatch.setattr(os, "rename", counted("rename"))
        monkeypatch.setattr(os, "replace", counted("replace"))
        try:
            decoder.save(folder)
            finished = True
        except KeyboardInterrupt:
            finished = False
        monkeypatch.setattr(os, "rename", real["rename"])
        monkeypatch.setattr(os, "replace", real["replace"])
        assert folder.is_dir() and _loads(folder), f"interrupted at rename {fail_at}"
        if finished:
            break
    assert [p.name for p in tmp_path.iterdir()] == ["last"]                 # the failed attempts cleaned up


def test_temporary_folders_of_a_killed_save_are_removed_by_the_next_save(decoder, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".m.lab-tmp-{dead}-abc123"       # what a save killed before it finished leaves
    live = tmp_path / f".m.lab-tmp-{os.getpid()}-def456"  # a save in progress (here: this process)
    other = tmp_path / ".m.notes"                         # not the lab's
    for p in (stale, live, other):
        p.mkdir()
    decoder.save(tmp_path / "m")
    assert not stale.exists() and live.exists() and other.exists()


def test_a_saved_decoder_has_the_permissions_of_an_ordinary_write(decoder, tmp_path):
    # The temporary folder (mkdtemp) and diffusers' weights file are private (0600/0700); a saved model is
    # the user's ordinary folder, readable as their other files are.
    old = os.umask(0o022)
    try:
        decoder.save(tmp_path / "d")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "d").iterdir()}
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
    assert modes and set(modes.values()) == {0o644}, modes
