"""Teacher runs write the same run store as distillation runs, so the dashboard lists and plots them, and a
resumed teacher run forgets what it logged after its checkpoint (no duplicated rows)."""

import pytest

from lab.errors import LabError
from lab.runs.store import RunReader
from lab.runs.view import RunSeries, scan_runs
from lab.teachers.config import TrainConfig
from teacher_configs import tiny_config
from lab.teachers.train import train


def tiny(**kw) -> TrainConfig:
    return tiny_config(**{"steps": 6, "warmup": 2, **kw})


def test_teacher_runs_show_in_the_dashboard_listing(tmp_path, bundled_windows):
    train(tiny(), tmp_path / "runs" / "mini", data=bundled_windows)
    runs, skipped = scan_runs(tmp_path / "runs")
    assert not skipped and [(r.name, r.kind, r.status) for r in runs] == [("mini", "teacher", "finished")]
    series = RunSeries(runs[0].path)
    with RunReader(runs[0].path) as reader:
        series.poll(reader)  # what the dashboard's live charts read
    assert series.series["train/loss"][0] == [1, 2, 3, 4, 5, 6]
    assert {"lr", "train/l1", "perf/step_s"} <= set(series.keys())


def test_a_resumed_teacher_run_logs_each_step_once(tmp_path, bundled_windows):
    run = tmp_path / "run"
    train(tiny(), run, data=bundled_windows, stop_at=3)
    with RunReader(run) as r:
        assert r.status() == "interrupted" and r.last_step() == 3
    train(tiny(), run, data=bundled_windows)
    with RunReader(run) as r:
        assert r.status() == "finished"
        assert [s for s, _ in r.scalars(["train/loss"])["train/loss"]] == [1, 2, 3, 4, 5, 6]
        assert r.meta()["final"]["step"] == 6


def test_teacher_checkpoints_are_the_lab_s_step_folders_and_a_damaged_one_is_set_aside(tmp_path, bundled_windows):
    # The same checkpoint folders as distillation (lab.training.checkpoints): listed in the store, the newest
    # two kept, and on resume a damaged newest one is moved aside and the run goes on from the one before.
    run = tmp_path / "run"
    train(tiny(checkpoint_every=1), run, data=bundled_windows, stop_at=4)
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert kept == ["step-0000003", "step-0000004"]
    with RunReader(run) as r:
        assert [c.step for c in r.checkpoints()] == [3, 4]
    (run / "checkpoints" / "step-0000004" / "weights.safetensors").write_bytes(b"cut short")
    result = train(tiny(checkpoint_every=1), run, data=bundled_windows)
    assert result["step"] == 6 and (run / "checkpoints" / "unreadable-step-0000004").is_dir()
    with RunReader(run) as r:
        assert [s for s, _ in r.scalars(["train/loss"])["train/loss"]] == [1, 2, 3, 4, 5, 6]
        assert [e for e in r.events("checkpoint_skipped")][0]["checkpoint"].endswith("step-0000004")


def test_a_teacher_run_is_not_written_into_a_user_s_folder(tmp_path, bundled_windows):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("{}")  # the user's own file, which a run would replace
    with pytest.raises(LabError, match="--run .* is not empty and is not a run of the lab"):
        train(tiny(), mine, data=bundled_windows)
    assert (mine / "config.json").read_text() == "{}" and sorted(p.name for p in mine.iterdir()) == ["config.json"]


def test_a_teacher_run_records_the_machine_it_trained_on(tmp_path, bundled_windows):
    # The card's machine line comes from the run, not from the machine that exports it later.
    from lab.teachers.checkpoint import load_state
    from lab.teachers.export import _machine
    train(tiny(steps=2), tmp_path / "run", data=bundled_windows)
    meta = load_state(tmp_path / "run")["meta"]
    assert meta["machine"].startswith("CPU only") and "1 torch thread(s)" in meta["machine"]
    assert _machine(tiny(device="cuda"), meta) == meta["machine"]
    assert _machine(tiny(device="cuda"), {}).startswith("GPU")  # a run from before the record: its device


def test_a_teacher_run_and_a_distillation_run_do_not_resume_each_other(tmp_path, bundled_windows):
    from pathlib import Path

    from lab.distill import distill
    from lab.runs.store import RunStoreError
    train(tiny(steps=1), tmp_path / "teacher", data=bundled_windows)
    tiny_distill = Path(__file__).resolve().parents[2] / "configs" / "distill" / "tiny.toml"
    with pytest.raises(RunStoreError, match="holds a teacher run, not a distill run"):
        distill(tiny_distill, tmp_path / "teacher", resume=True)
    (tmp_path / "distill").mkdir()
    from lab.runs.store import RunStore
    RunStore.create(tmp_path / "distill", {"x": 1}).close()
    with pytest.raises(RunStoreError, match="holds a distill run, not a teacher run; choose another --run"):
        train(tiny(), tmp_path / "distill", data=bundled_windows)
