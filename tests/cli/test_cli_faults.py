"""Faults that used to end in a traceback end in one line naming the problem and the fix, before any work
where they can be seen before it: thread counts out of range, an --out path too long or not writable, a full
disk during distillation (the run store left consistent, --resume continuing), a --stills file that is not
a .npz of photos, and a run none of whose checkpoints can be read (refused, with --restart to start over)."""

import errno
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from lab import paths
from lab.cli import main
from lab.errors import LabError

TINY_TOML = paths.REPO_ROOT / "configs" / "distill" / "tiny.toml"
LONG = "x" * 300  # longer than any file system's name limit (255 bytes on Linux)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:") or ": error: " in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("threads, expected", [("100000", "CPU count"), ("-1", "must be a whole number >= 1")])
def test_ship_threads_out_of_range_is_a_usage_error(threads, expected, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["ship", "--run", str(tmp_path), "--threads", threads])
    assert exit_.value.code == 2
    assert expected in _one_error_line(capsys)


@pytest.fixture
def no_model_loads(monkeypatch):
    """Fail the test if a command loads a model: the refusal must come before the work."""
    import importlib

    import lab.models
    # Modules that bind load_decoder when first imported get the real one, not this test's.
    for name in ("lab.distill", "lab.demo", "lab.prune", "lab.analysis", "lab.data.cache", "lab.teachers.train"):
        importlib.import_module(name)

    def refuse(*args, **kwargs):
        raise AssertionError("the command loaded a model before refusing its --out")
    monkeypatch.setattr(lab.models, "load_decoder", refuse)


TINY_PRUNE = ["prune", "--teacher", "wan2.1-tiny", "--weights", "random", "--keep", "0.5", "--frames", "5",
              "--size", "32x32"]
TINY_DECODE = ["decode", "--decoder", "wan2.1-tiny", "--weights", "random", "--video", "bbb-128", "--frames", "5"]
TINY_ENCODE = ["encode", "--teacher", "wan2.1-tiny", "--weights", "random", "--video", "bbb-128", "--frames", "5"]


@pytest.mark.parametrize("argv", [TINY_PRUNE, TINY_DECODE, TINY_ENCODE,
                                  ["distill", "--config", str(TINY_TOML)], ["demo", "--quick"]],
                         ids=lambda a: a[0])
def test_an_out_path_too_long_is_one_line_before_the_work(argv, tmp_path, capsys, no_model_loads):
    out = tmp_path / LONG / ("out.mp4" if argv[0] in ("decode",) else "out")
    assert main([*argv, "--out", str(out)]) == 1
    line = _one_error_line(capsys)
    assert "longer than this file system allows" in line and "choose a shorter path" in line


@pytest.mark.parametrize("argv, name", [(TINY_PRUNE, "student"), (TINY_DECODE, "video.mp4"),
                                        (TINY_ENCODE, "z.pth")], ids=["prune", "decode", "encode"])
def test_a_read_only_out_is_one_line_before_the_work(argv, name, tmp_path, capsys, monkeypatch, no_model_loads):
    import lab.files
    folder = tmp_path / "read-only"
    folder.mkdir()
    # Root writes through chmod, so the folder is made read-only where the check looks: os.access (a real
    # read-only mount also fails its probe file).
    real_access = lab.files.os.access
    monkeypatch.setattr(lab.files.os, "access", lambda p, mode: Path(p) != folder and real_access(p, mode))
    assert main([*argv, "--out", str(folder / name)]) == 1
    line = _one_error_line(capsys)
    assert f"{folder} is not writable" in line
    assert list(folder.iterdir()) == []


def test_a_folder_where_no_file_can_be_created_is_refused(tmp_path, monkeypatch):
    # What os.access cannot see (root on a read-only mount): the probe file.
    import lab.files
    from lab.files import check_writable
    monkeypatch.setattr(lab.files.tempfile, "mkstemp", lambda **kw: (_ for _ in ()).throw(OSError(errno.EROFS, "ro")))
    with pytest.raises(LabError, match="is not writable"):
        check_writable(tmp_path / "out")


def _status(run: Path) -> str:
    from lab.runs.store import RunReader
    with RunReader(run) as r:
        return r.status()


@pytest.mark.slow
def test_a_full_disk_during_distill_is_one_line_and_resume_continues(tmp_path, capsys, monkeypatch, sample_clips):
    from lab.training import checkpoints
    real_write = checkpoints.CheckpointFolder.write
    calls = []

    def disk_fills_up(self, step, *args, **kwargs):
        calls.append(step)
        if len(calls) > 1:  # the first checkpoint (step 0) fits, the next one finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, step, *args, **kwargs)

    monkeypatch.setattr(checkpoints.CheckpointFolder, "write", disk_fills_up)
    run = tmp_path / "run"
    assert main(["distill", "--config", str(TINY_TOML), "--out", str(run)]) == 1
    line = _one_error_line(capsys)
    assert f"the disk holding {run}" in line and "is full" in line and f"--out {run} --resume" in line
    assert _status(run) == "failed"  # not left "running"
    monkeypatch.setattr(checkpoints.CheckpointFolder, "write", real_write)
    assert main(["distill", "--out", str(run), "--resume", "--json"]) == 0
    assert _status(run) == "finished"
    assert not (run / "lab.lock").exists()


def test_a_store_that_cannot_record_the_failure_does_not_hide_it(monkeypatch, caplog):
    # A full disk also stops the run store's writes: the first error is the one reported, with a warning.
    from lab.training.loop import fail

    class FullStore:
        def log_event(self, *a, **k):
            raise sqlite3.OperationalError("database or disk is full")

    fail(FullStore(), 3, Path("run"), OSError(errno.ENOSPC, "No space left on device"))
    assert "could not record the failure" in caplog.text


@pytest.mark.slow
def test_a_run_with_no_readable_checkpoint_asks_for_restart(tmp_path, capsys, sample_clips):
    run = tmp_path / "run"
    assert main(["distill", "--config", str(TINY_TOML), "--out", str(run), "--json"]) == 0
    capsys.readouterr()
    assert main(["distill", "--out", str(run), "--restart"]) == 1  # it can resume: --restart alone discards nothing
    line = _one_error_line(capsys)
    assert f"python -m lab distill --out {run} --resume" in line and "--restart --overwrite" in line
    assert _status(run) == "finished" and list(run.glob("checkpoints/step-*"))
    for weights in run.glob("checkpoints/step-*/weights.safetensors"):
        weights.write_bytes(b"cut short")
    capsys.readouterr()
    assert main(["distill", "--out", str(run), "--resume"]) == 1
    line = _one_error_line(capsys)
    assert "no checkpoint of" in line and f"python -m lab distill --out {run} --restart" in line
    assert _status(run) == "finished"  # the refused resume changed nothing
    assert main(["distill", "--out", str(run), "--resume"]) == 1  # asked again: still refused, not step 0
    assert "--restart" in _one_error_line(capsys)
    assert main(["distill", "--out", str(run), "--restart", "--json"]) == 0
    assert _status(run) == "finished" and list(run.glob("checkpoints/step-*"))


def test_restart_needs_a_run(tmp_path, capsys):
    assert main(["distill", "--out", str(tmp_path / "none"), "--restart"]) == 1
    assert "holds none" in _one_error_line(capsys)


def test_distill_device_flag_overrides_the_config(tmp_path, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("the override is seen through CUDA's absence")
    assert main(["distill", "--config", str(TINY_TOML), "--out", str(tmp_path / "run"), "--device", "cuda"]) == 1
    assert "device 'cuda' was asked for" in _one_error_line(capsys)  # the config says cpu


def _bad_stills(tmp: Path) -> dict[str, Path]:
    text = tmp / "notes.npz"
    text.write_text("not an archive")
    pickled = tmp / "objects.npz"
    np.savez(pickled, a=np.array([{"x": 1}], dtype=object))
    floats = tmp / "floats.npz"
    np.savez(floats, a=np.zeros((8, 8), dtype=np.float32))
    return {"text": text, "pickled": pickled, "floats": floats}


def test_stills_that_are_not_a_npz_of_photos_are_one_line(tmp_path):
    from lab.data.stills import load_photos
    for kind, path in _bad_stills(tmp_path).items():
        with pytest.raises(LabError) as err:
            load_photos(path)
        assert "\n" not in str(err.value) and str(path) in str(err.value), kind
        assert "uint8 (H, W, 3)" in str(err.value), kind


def test_teacher_train_with_bad_stills_is_one_line(tmp_path, capsys):
    bad = _bad_stills(tmp_path)["text"]
    argv = ["teacher", "train", "--model", "wan2.1-tiny", "--steps", "1", "--batch", "1", "--frames", "5",
            "--crop", "32", "--short-sides", "64", "--no-wan-clip", "--data", "bbb-128", "--stills", str(bad),
            "--run", str(tmp_path / "run")]
    assert main(argv) == 1
    assert "is not a .npz of plain photo arrays" in _one_error_line(capsys)


@pytest.mark.slow
def test_a_teacher_run_with_no_readable_checkpoint_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["teacher", "train", "--model", "wan2.1-tiny", "--steps", "2", "--batch", "1", "--frames", "5",
            "--crop", "32", "--short-sides", "64", "--warmup", "1", "--data", "bbb-128", "--run", str(run), "--json"]
    assert main(argv) == 0
    for weights in run.glob("checkpoints/step-*/weights.safetensors"):
        weights.write_bytes(b"cut short")
    capsys.readouterr()
    for _ in range(2):  # the damaged checkpoints are set aside the first time: still refused, not step 0
        assert main([*argv[:-1], "--steps", "3"]) == 1
        assert "can be read" in _one_error_line(capsys)


def test_decode_and_encode_never_replace_a_file_unasked(tmp_path, capsys):
    from lab.cli import main
    video = tmp_path / "mine.mp4"
    video.write_bytes(b"a user's video")
    assert main([*TINY_DECODE, "--out", str(video)]) == 1
    assert "exists" in capsys.readouterr().err and video.read_bytes() == b"a user's video"
    assert main([*TINY_DECODE, "--out", str(video), "--overwrite"]) == 0 and video.stat().st_size > 1000
    assert main(["encode", "--teacher", "wan2.1-tiny", "--weights", "random", "--video", "bbb-128", "--frames", "5",
                 "--out", str(tmp_path / "z.npy")]) == 1
    assert ".pth" in capsys.readouterr().err
