"""--eval-every: a teacher run scores the held-out clips as it trains, and the exported card shows the learning
curve (held-out PSNR against training minutes) that says whether a GPU session's minutes paid."""

import json

import pytest

from lab.errors import LabError
from lab.runs.store import RunReader
from lab.teachers.config import TrainConfig
from lab.teachers.export import export_run
from lab.teachers.heldout import learning_curve
from lab.teachers.train import train
from teacher_configs import tiny_config


def tiny(**kw) -> TrainConfig:
    # wan_clip off: exports measure latent statistics on the run's clips, and CI has no ../shared
    return tiny_config(**{"steps": 4, "warmup": 1, "eval_frames": 5, "wan_clip": False, **kw})


def test_the_run_scores_the_held_out_clips_as_it_trains(tmp_path, bundled_windows, sample_clips):
    run = tmp_path / "run"
    train(tiny(eval_every=2), run, data=bundled_windows)
    curve = learning_curve(run)
    # the start, every 2 steps, and the end (step 4 is both)
    assert [p["step"] for p in curve] == [0, 2, 4]
    assert curve[0]["minutes"] == 0 and curve[0]["minutes"] <= curve[1]["minutes"] <= curve[2]["minutes"]
    assert all(set(p["clips"]) == {"carphone", "bikes-heldout"} for p in curve)
    assert all(5 < m["psnr"] < 60 and 0 < m["ssim"] <= 1 for p in curve for m in p["clips"].values())
    with RunReader(run) as r:
        assert r.latest()["heldout/psnr"] == pytest.approx(
            sum(m["psnr"] for m in curve[-1]["clips"].values()) / 2, abs=1e-3)
    # the exported card carries it: a table row per evaluation, and the record keeps the points
    out = tmp_path / "export"
    info = export_run(run, out, eval_frames=5)
    assert info["curve"] == curve
    card = (out / "README.md").read_text()
    section = card.split("## Learning curve", 1)[1].split("\n## ", 1)[0]
    assert "scored every 2 steps on 5-frame clips" in section and "step 0 is random weights" in section
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| training")]
    assert [row.split(" | ")[1] for row in rows] == ["0", "2", "4"]
    assert f"{curve[-1]['clips']['carphone']['psnr']:.2f}" in rows[-1]
    assert json.loads((out / "provenance.json").read_text())["curve"] == curve


def test_a_run_that_spends_its_time_budget_scores_its_last_step(tmp_path, bundled_windows, sample_clips):
    # --max-minutes ends a teacher run where it is exported: the curve must reach that step, even off the cadence
    run = tmp_path / "run"
    result = train(tiny(steps=1000, max_minutes=1e-4, eval_every=100), run, data=bundled_windows)
    assert result["stopped_by"] == "time" and 1 <= result["step"] < 100
    assert [p["step"] for p in learning_curve(run)] == [0, result["step"]]
    # --stop-at is an interruption, as a signal is: no extra evaluation
    train(tiny(steps=10, eval_every=100), tmp_path / "cut", data=bundled_windows, stop_at=3)
    assert [p["step"] for p in learning_curve(tmp_path / "cut")] == [0]


def test_without_eval_every_there_is_no_curve(tmp_path, bundled_windows):
    run = tmp_path / "run"
    train(tiny(steps=2), run, data=bundled_windows)
    assert learning_curve(run) == [] and learning_curve(tmp_path / "no-run") == []
    with RunReader(run) as r:
        assert not [k for k in r.latest() if k.startswith("heldout/")]
    with pytest.raises(LabError, match="--eval-every must be >= 0"):
        tiny(eval_every=-1).validate()
