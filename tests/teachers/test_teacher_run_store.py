"""Teacher runs write the same run store as distillation runs, so the dashboard lists and plots them, and a
resumed teacher run forgets what it logged after its checkpoint (no duplicated rows)."""

import pytest

from lab.data.clips import ClipSpec, ClipWindows
from lab.runs.store import RunReader
from lab.runs.view import RunSeries, scan_runs
from lab.teachers.config import TrainConfig
from lab.teachers.train import train


@pytest.fixture(scope="module")
def bundled_windows(bundled_clip_path):
    return ClipWindows([ClipSpec("bbb", str(bundled_clip_path))], short_sides=(64,))


def tiny(**kw) -> TrainConfig:
    base = dict(model="wan2.1-tiny", steps=6, batch=1, frames=5, crop=32, lr=3e-3, warmup=2, threads=1,
                checkpoint_minutes=60.0, log_every=1)
    return TrainConfig(**{**base, **kw})


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
