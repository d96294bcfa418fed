"""A distillation writes only into its own folder: a non-empty folder that is not a run is refused before
anything is written (unless --overwrite, which replaces only a run's own files); an existing run is
resumed, or replaced only with --overwrite."""

import json
from pathlib import Path

import pytest

from lab.cli import main
from lab.distill import distill, load_config
from lab.errors import ConfigError
from lab.models.interface import FolderNotEmptyError
from lab.runs.store import RunReader, RunStoreError

TINY = Path(__file__).resolve().parents[2] / "configs" / "distill" / "tiny.toml"


def short_config():
    cfg = load_config(TINY)
    for ph in cfg.phases:
        ph.max_steps = 1
    cfg.eval_every, cfg.sample_every = 100, 0
    return cfg


def _someone_elses_folder(root: Path) -> dict[str, bytes]:
    """A folder shaped like a run's, but not one: a model's config.json, best/ and init/, a checkpoint."""
    files = {"config.json": b'{"model": "theirs"}', "best/weights.bin": b"w", "init/lab_notes.txt": b"n",
             "checkpoints/step-0000099/state.pt": b"s", "notes.txt": b"keep"}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def _unchanged(root: Path, files: dict[str, bytes]) -> bool:
    return all((root / n).read_bytes() == d for n, d in files.items())


def test_a_folder_that_is_not_a_run_is_refused_and_left_alone(tmp_path, capsys):
    out = tmp_path / "theirs"
    files = _someone_elses_folder(out)
    with pytest.raises(FolderNotEmptyError, match="--overwrite"):
        distill(short_config(), out)
    assert main(["distill", "--config", str(TINY), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "--overwrite" in err and "\n" not in err
    assert _unchanged(out, files) and sorted(p.name for p in out.iterdir()) == ["best", "checkpoints",
                                                                              "config.json", "init", "notes.txt"]
    with pytest.raises(RunStoreError, match="holds no run"):
        distill(None, out, resume=True)
    with pytest.raises(ConfigError, match="cannot be combined"):
        distill(short_config(), out, resume=True, overwrite=True)
    assert _unchanged(out, files)


def test_overwrite_replaces_a_runs_own_files_and_keeps_the_others(tmp_path, sample_clips):
    out = tmp_path / "theirs"
    _someone_elses_folder(out)
    final = distill(short_config(), out, overwrite=True)
    assert final["step"] == 3
    # The run's own names were replaced (with --overwrite, as asked); everything else is as it was.
    assert json.loads((out / "config.json").read_text())["teacher"] == "wan2.1-tiny"
    assert not (out / "checkpoints" / "step-0000099").exists()
    assert (out / "notes.txt").read_bytes() == b"keep" and (out / "best" / "weights.bin").read_bytes() == b"w"
    assert (out / "init" / "lab_notes.txt").read_bytes() == b"n"

    # A run is not started over by accident: resume it, or replace it with --overwrite.
    with pytest.raises(RunStoreError, match="already holds a run"):
        distill(short_config(), out)
    (out / "samples" / "mine.mp4").write_bytes(b"v")
    cfg = short_config()
    cfg.seed = 1
    distill(cfg, out, overwrite=True)
    with RunReader(out) as r:
        assert r.config()["seed"] == 1 and not r.events("resume")      # a new run, not a resumed one
        assert [s for s, _ in r.scalars(["phase"])["phase"]] == [1, 2, 3]
    assert (out / "samples" / "mine.mp4").read_bytes() == b"v" and (out / "notes.txt").read_bytes() == b"keep"
