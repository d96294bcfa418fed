"""lab.files, the one way the lab writes: a file or folder is replaced whole or not at all (an exception, Ctrl-C
or a killed process leaves the old one), gets ordinary permissions, and a folder the lab did not write is
refused unless the user asks (and even then only the lab's own files in it change)."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from lab import files, paths
from lab.files import (DECODER_FOLDER, FolderFiles, FolderNotEmptyError, atomic_path, atomic_write_bytes,
                       atomic_write_json, atomic_write_text, check_output_folder, install_folder, move_aside,
                       remove_owned_files, remove_tree, replace_folder, staged_folder)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----- one file ----------------------------------------------------------------------------------------------

def test_atomic_writes_put_the_whole_file_in_place_with_ordinary_permissions(tmp_path, umask_022):
    assert atomic_write_text(tmp_path / "a" / "t.txt", "héllo").read_text(encoding="utf-8") == "héllo"  # makes a/
    assert atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    atomic_write_json(tmp_path / "c.json", {"k": [1, 2]})
    assert (tmp_path / "c.json").read_text() == '{\n  "k": [\n    1,\n    2\n  ]\n}\n'
    with atomic_path(tmp_path / "photos.npz", suffix=".npz") as tmp:  # a library that adds .npz to other names
        np.savez_compressed(tmp, x=np.arange(3))
    assert np.load(tmp_path / "photos.npz")["x"].tolist() == [0, 1, 2]
    assert names(tmp_path) == ["a", "b.bin", "c.json", "photos.npz"]                # no temporary left
    assert {(tmp_path / n).stat().st_mode & 0o777 for n in ("b.bin", "c.json", "photos.npz")} == {0o644}


@pytest.mark.parametrize("stop", [RuntimeError("the writer failed"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_a_write_stopped_midway_leaves_the_old_file_and_no_temporary(tmp_path, stop):
    path = atomic_write_text(tmp_path / "report.md", "old")
    with pytest.raises(type(stop)):
        with atomic_path(path) as tmp:
            tmp.write_text("half of the ne")
            raise stop
    assert path.read_text() == "old" and names(tmp_path) == ["report.md"]


def test_a_rename_that_fails_leaves_the_old_file(tmp_path, monkeypatch):
    path = atomic_write_text(tmp_path / "index.json", "old")

    def full(*a):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space"):
        atomic_write_json(path, {"new": True})
    assert path.read_text() == "old" and names(tmp_path) == ["index.json"]


def test_a_killed_writer_leaves_the_old_file(tmp_path):
    path = atomic_write_text(tmp_path / "z.pth", "old")
    code = ("import os, sys\nfrom lab.files import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_text('half')\n    os._exit(9)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], cwd=paths.REPO_ROOT)
    assert proc.returncode == 9 and path.read_text() == "old"
    left = [n for n in names(tmp_path) if n != "z.pth"]
    assert len(left) == 1 and re.fullmatch(r"\.z\.pth\..+\.tmp", left[0])  # hidden; readers skip it


def test_move_aside_and_remove_tree(tmp_path):
    (tmp_path / "step-1").mkdir()
    (tmp_path / "step-1" / "w").write_text("new")
    (tmp_path / "unreadable-1").mkdir()                    # what an earlier move left: replaced
    (tmp_path / "unreadable-1" / "old").write_text("old")
    move_aside(tmp_path / "step-1", tmp_path / "unreadable-1")
    assert names(tmp_path) == ["unreadable-1"] and names(tmp_path / "unreadable-1") == ["w"]
    remove_tree(tmp_path / "unreadable-1")
    assert names(tmp_path) == []


@pytest.mark.parametrize("swap", [True, False], ids=["atomic-swap", "remove-then-rename"])
def test_replace_folder_puts_the_complete_folder_in_place(tmp_path, monkeypatch, swap):
    if not swap:
        monkeypatch.setattr(files, "exchange_paths", lambda a, b: False)
    for name, content in (("final", "old"), (".final.tmp", "new")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "state.pt").write_text(content)
    (tmp_path / "final" / "stale").write_text("x")
    replace_folder(tmp_path / ".final.tmp", tmp_path / "final")
    assert names(tmp_path) == ["final"] and names(tmp_path / "final") == ["state.pt"]
    assert (tmp_path / "final" / "state.pt").read_text() == "new"
    replace_folder(_folder(tmp_path / ".new", "w"), tmp_path / "absent")
    assert names(tmp_path / "absent") == ["w"]


def _folder(path, *file_names):
    path.mkdir(exist_ok=True)
    for n in file_names:
        (path / n).write_text(n)
    return path


# ----- folders in a user's tree ------------------------------------------------------------------------------

def test_the_folder_rule_allows_absent_empty_ours_or_overwrite_and_refuses_the_rest(tmp_path):
    def check(folder, overwrite=False):
        check_output_folder(folder, overwrite, ours=lambda f: (f / "ours").exists(), what="--out",
                            refusal=f"{folder} is not the lab's; choose a new or empty --out, or pass --overwrite.")
    check(tmp_path / "absent")
    check(_folder(tmp_path / "empty"))
    check(_folder(tmp_path / "ours", "ours", "data"))
    users = _folder(tmp_path / "users", "notes.txt")
    with pytest.raises(FolderNotEmptyError, match="users is not the lab's; .*--overwrite") as err:
        check(users)
    assert "\n" not in str(err.value) and names(users) == ["notes.txt"]      # refused before anything is written
    check(users, overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FolderNotEmptyError, match="is a file, not a folder; choose another --out"):
        check(tmp_path / "file", overwrite=True)


def test_folder_files_say_which_files_the_lab_owns():
    kind = FolderFiles(marker="m.json", names=("README.md",), prefix="w", suffixes=(".safetensors",))
    assert [kind.owns(n) for n in ("m.json", "README.md", "w-001.safetensors", "w.txt", "notes.txt")] == \
        [True, True, True, False, False]
    assert DECODER_FOLDER.owns("diffusion_pytorch_model.safetensors.index.json") and DECODER_FOLDER.owns("config.json")
    assert not DECODER_FOLDER.owns("README.md") and DECODER_FOLDER.marker == "lab_decoder.json"


def test_removing_a_written_folder_keeps_the_users_files(tmp_path):
    mixed = _folder(tmp_path / "last", "lab_decoder.json", "config.json", "diffusion_pytorch_model.safetensors",
                    "notes.txt")
    remove_owned_files(mixed, DECODER_FOLDER)
    assert names(mixed) == ["notes.txt"]
    remove_owned_files(_folder(tmp_path / "best", "lab_decoder.json", "config.json"), DECODER_FOLDER)
    assert not (tmp_path / "best").exists()                                   # empty once ours are gone
    remove_owned_files(tmp_path / "absent", DECODER_FOLDER)


KIND = FolderFiles(marker="marker.json", names=("a", "b", "c"))


@pytest.mark.parametrize("swap", [True, False], ids=["atomic-swap", "file-by-file"])
def test_install_replaces_only_the_lab_files_and_moves_the_marker_last(tmp_path, monkeypatch, umask_022, swap):
    if not swap:  # as on an OS or filesystem that cannot swap two folders
        monkeypatch.setattr(files, "exchange_paths", lambda a, b: False)
    target = tmp_path / "out"
    with staged_folder(target) as tmp:
        _folder(tmp, "a", "c", "marker.json")
        install_folder(tmp, target, KIND)                                     # absent: renamed into place
    assert names(tmp_path) == ["out"] and names(target) == ["a", "c", "marker.json"]
    assert target.stat().st_mode & 0o777 == 0o755 and (target / "a").stat().st_mode & 0o777 == 0o644  # not mkdtemp's
    (target / "a").write_text("old")
    with staged_folder(target) as tmp:                                        # only lab files there: swapped whole
        _folder(tmp, "a", "b", "marker.json")
        install_folder(tmp, target, KIND)
    assert names(target) == ["a", "b", "marker.json"] and (target / "a").read_text() == "a"
    (target / "notes.txt").write_text("the user's")                           # a user's file: moved in one by one
    moved = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda s, d: (moved.append(os.path.basename(d)), real(s, d)))
    with staged_folder(target) as tmp:
        _folder(tmp, "marker.json", "c")
        install_folder(tmp, target, KIND)
    assert moved == ["c", "marker.json"]                                      # the marker last
    assert names(target) == ["c", "marker.json", "notes.txt"]                 # a and b were ours, not written now
    assert names(tmp_path) == ["out"]                                         # staging folders removed


def test_a_staging_folder_of_a_killed_process_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = _folder(tmp_path / f".out.lab-tmp-{dead}-abc", "a")
    live = _folder(tmp_path / f".out.lab-tmp-{os.getpid()}-def")             # a write in progress: this process
    other = _folder(tmp_path / ".out.notes")                                  # not the lab's
    with pytest.raises(KeyboardInterrupt):
        with staged_folder(tmp_path / "out") as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(f".out.lab-tmp-{os.getpid()}-")
            raise KeyboardInterrupt
    assert not stale.exists() and live.exists() and other.exists()
    assert names(tmp_path) == sorted([live.name, other.name])                 # its own staging folder is gone too


def test_only_lab_files_renames_files():
    # The one I/O layer: every rename into place goes through lab.files.
    found = [f"{p.relative_to(paths.REPO_ROOT)}:{i}" for p in sorted((paths.REPO_ROOT / "lab").rglob("*.py"))
             if p.name != "files.py" or p.parent.name != "lab"
             for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"\bos\.(replace|rename)\(", line)]
    assert found == [], found


def test_a_full_disk_is_named_by_the_file_that_failed_when_the_error_says(tmp_path):
    # A full temporary or cache disk is not the output folder's: the error names the disk the write went to.
    import errno

    from lab.files import disk_full_error, is_disk_full
    cache = tmp_path / "cache" / "shard.tmp"
    exc = OSError(errno.ENOSPC, "No space left on device", str(cache))
    assert is_disk_full(exc)
    wrapped = RuntimeError("writing the cache failed")
    wrapped.__cause__ = exc
    assert f"the disk holding {cache}" in str(disk_full_error(tmp_path / "out", "run it again.", wrapped))
    anonymous = OSError(errno.ENOSPC, "No space left on device")  # torch's and sqlite's errors name no file
    assert f"the disk holding {tmp_path / 'out'}" in str(disk_full_error(tmp_path / "out", "run it again.", anonymous))
