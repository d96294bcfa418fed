"""lab.runs.view: the dashboard's data shaping and figures, on real run stores written with RunStore."""

import math
from pathlib import Path

import pytest

from lab.runs.store import Checkpoint, Phase, RunReader, RunStore, RunSummary, Sample
from lab.runs import view


@pytest.fixture
def store(tmp_path):
    s = RunStore.create(tmp_path / "run", {"lr": 1e-3})
    yield s
    s.close()


def _poll(series, folder):
    with RunReader(folder) as r:
        return series.poll(r)


def test_series_poll_reads_only_what_is_new(store):
    for step in range(5):
        store.log_scalars(step, {"train/loss": 1.0 / (step + 1), "lr": 1e-3})
    series = view.RunSeries(str(store.folder))
    assert _poll(series, store.folder) == 10
    assert series.last_step == 4
    assert series.get("train/loss")[0] == [0, 1, 2, 3, 4]
    store.log_scalars(5, {"train/loss": 0.1, "lr": 1e-3})
    # the re-read last step (4) plus the new one (5), for two keys
    assert _poll(series, store.folder) == 4
    assert series.get("train/loss")[0] == [0, 1, 2, 3, 4, 5]
    assert series.latest("train/loss") == pytest.approx(0.1)
    assert _poll(series, store.folder) == 2  # nothing new: only step 5 again
    assert series.get("lr")[0] == [0, 1, 2, 3, 4, 5]


def test_series_poll_picks_up_keys_logged_later_at_the_last_step(store):
    store.log_scalars(0, {"train/loss": 1.0})
    store.log_scalars(1, {"train/loss": 0.5})
    series = view.RunSeries(str(store.folder))
    _poll(series, store.folder)
    store.log_scalars(1, {"val/psnr": 21.0})  # the evaluation of step 1, in its own transaction
    _poll(series, store.folder)
    assert series.get("val/psnr") == ([1], [21.0])
    assert series.get("train/loss")[0] == [0, 1]


def test_series_reloads_after_a_resume_truncates_the_store(store):
    for step in range(6):
        store.log_scalars(step, {"train/loss": float(step)})
    series = view.RunSeries(str(store.folder))
    _poll(series, store.folder)
    store.truncate_after(2)
    store.log_scalars(3, {"train/loss": 30.0})
    _poll(series, store.folder)
    assert series.get("train/loss") == ([0, 1, 2, 3], [0.0, 1.0, 2.0, 30.0])
    assert series.last_step == 3


def test_series_of_an_empty_store(store):
    series = view.RunSeries(str(store.folder))
    assert _poll(series, store.folder) == 0
    assert series.keys() == [] and series.last_step is None
    assert view.headline(series) == {}


def test_group_keys_follow_the_store_conventions():
    keys = ["train/loss", "train/pixel", "train/feat/up0", "train/feat/mid", "val/psnr", "val/psnr_vs_teacher",
            "val/retention", "lr", "weight/pixel", "perf/step_s", "phase", "grad_norm"]
    g = view.group_keys(keys)
    assert g["losses"] == ["train/loss", "train/pixel"]
    assert g["stages"] == ["train/feat/mid", "train/feat/up0"]
    assert g["validation"] == ["val/psnr", "val/psnr_vs_teacher", "val/retention"]
    assert g["lr"] == ["lr"] and g["weights"] == ["weight/pixel"] and g["perf"] == ["perf/step_s"]
    assert g["other"] == ["grad_norm"]  # phase is drawn as bands, not as a curve
    assert view.validation_groups(keys) == {"psnr": ["val/psnr", "val/psnr_vs_teacher"],
                                            "retention": ["val/retention"]}


def test_smooth_is_debiased_and_skips_nan():
    assert view.smooth([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])
    out = view.smooth([1.0, float("nan"), 3.0], 0.5)
    assert out[0] == pytest.approx(1.0) and math.isnan(out[1])
    assert out[2] == pytest.approx((0.25 * 1 + 0.5 * 3) / 0.75)
    assert view.smooth([1.0, 5.0], 0.0) == [1.0, 5.0]
    with pytest.raises(ValueError, match="smoothing weight"):
        view.smooth([1.0], 1.0)


def test_phase_bands_close_at_the_next_phase_and_stay_open_at_the_end():
    phases = [Phase(0, "reconstruction", 0, 10, None), Phase(1, "feature-alignment", 10, None, "plateau")]
    bands = view.phase_bands(phases, last_step=17)
    assert [(b.name, b.start, b.end, b.open) for b in bands] == [
        ("reconstruction", 0, 10, False), ("feature-alignment", 10, 17, True)]
    assert view.phase_at(bands, 12).name == "feature-alignment"
    assert view.phase_at(bands, 3).name == "reconstruction"
    assert view.phase_at(bands, None) is None
    assert view.phase_bands([], 5) == []


def test_line_figure_marks_phases(store):
    store.start_phase(0, "reconstruction", 0)
    for step in range(4):
        store.log_scalars(step, {"train/loss": 1.0 / (step + 1), "train/pixel": 0.5})
    store.start_phase(1, "adversarial", 4)
    store.log_scalars(4, {"train/loss": 0.2, "train/pixel": 0.4})
    series = view.RunSeries(str(store.folder))
    _poll(series, store.folder)
    with RunReader(store.folder) as r:
        bands = view.phase_bands(r.phases(), series.last_step)
    fig = view.line_figure(series, ["train/loss", "train/pixel"], "losses", bands, smoothing=0.5, log_y=True)
    assert [t.name for t in fig.data] == ["loss (raw)", "loss", "pixel (raw)", "pixel"]
    assert list(fig.data[0].x) == [0, 1, 2, 3, 4]
    shapes = fig.layout.shapes
    assert sum(s.type == "rect" for s in shapes) == 2 and sum(s.type == "line" for s in shapes) == 2
    assert {a.text for a in fig.layout.annotations} == {"reconstruction", "adversarial"}
    assert fig.layout.yaxis.type == "log"


def test_perf_figure_has_a_panel_per_logged_unit(store):
    store.log_scalars(0, {"perf/step_s": 0.5, "perf/peak_mem_bytes": 2 * 2**20})
    series = view.RunSeries(str(store.folder))
    _poll(series, store.folder)
    fig = view.perf_figure(series)
    assert [t.name for t in fig.data] == ["seconds / step", "peak memory (MiB)"]
    assert fig.data[1].y == (2.0,)


def test_compare_runs_on_one_chart(tmp_path):
    runs = {}
    for name, scale in (("a", 1.0), ("b", 2.0)):
        with RunStore.create(tmp_path / name, {}) as s:
            for step in range(3):
                s.log_scalars(step, {"train/loss": scale / (step + 1), **({"val/psnr": 20.0} if name == "a" else {})})
        runs[name] = view.RunSeries(str(tmp_path / name))
        _poll(runs[name], tmp_path / name)
    frame = view.compare_frame(runs, "train/loss")
    assert len(frame) == 6 and set(frame["run"]) == {"a", "b"}
    fig = view.compare_figure(runs, "train/loss", log_y=True)
    assert [t.name for t in fig.data] == ["a", "b"] and list(fig.data[1].y) == pytest.approx([2.0, 1.0, 2 / 3])
    assert view.common_keys(runs) == ["train/loss", "val/psnr"]  # shared keys first
    assert view.common_keys({}) == []


def test_tables(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "b.safetensors").write_bytes(b"x")
    table = view.checkpoints_table([Checkpoint(4, "checkpoints/a.safetensors", "val/psnr", 20.0, False),
                                    Checkpoint(8, "checkpoints/b.safetensors", "val/psnr", 22.0, True)], tmp_path)
    assert table["best"].tolist() == ["", "★ best"] and table["on disk"].tolist() == [False, True]
    runs = view.runs_table([RunSummary("/r/x", "x", "distill", "interrupted", 7, "feature", 0.0, 100.0)], now=130.0)
    assert runs.iloc[0].to_dict() == {"run": "x", "status": "‖ interrupted", "step": 7, "phase": "feature",
                                      "kind": "distill", "updated": "30 s ago", "folder": "/r/x"}


def test_latest_sample_skips_files_that_are_gone(tmp_path):
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "t4.mp4").write_bytes(b"x")
    samples = [Sample(4, "triptych", "samples/t4.mp4"), Sample(8, "triptych", "samples/t8.mp4"),
               Sample(9, "student", "samples/s9.mp4")]
    assert view.latest_sample(samples, tmp_path).step == 4
    assert view.latest_sample(samples, tmp_path, name="student") is None


def test_paths_a_store_names_are_confined_to_the_run(tmp_path):
    # issue 21, item 3: every stored path resolves inside its run folder, symlinks included
    run, secret = tmp_path / "run", tmp_path / "secret.mp4"
    (run / "samples").mkdir(parents=True)
    secret.write_bytes(b"not yours")
    (run / "samples" / "ok.mp4").write_bytes(b"clip")
    (run / "samples" / "out.mp4").symlink_to(secret)
    (run / "samples" / "in.mp4").symlink_to(run / "samples" / "ok.mp4")
    (run / "escape").symlink_to(tmp_path)
    assert view.read_run_file(run, "samples/ok.mp4") == b"clip"
    assert view.read_run_file(run, str(run / "samples" / "in.mp4")) == b"clip"  # absolute, inside
    for bad in ("samples/out.mp4", "../secret.mp4", str(secret), "/etc/passwd", "escape/secret.mp4",
                "samples/\x00.mp4", 5):
        assert view.contained(run, bad) is None, bad
        with pytest.raises(view.OutsideRunError, match="outside the run folder"):
            view.read_run_file(run, bad)
    samples = [Sample(1, "triptych", "samples/ok.mp4"), Sample(2, "triptych", "samples/out.mp4")]
    assert view.latest_sample(samples, run).step == 1
    assert [s.step for s in view.refused_samples(samples, run)] == [2]
    table = view.checkpoints_table([Checkpoint(1, str(secret), None, None, False)], run)
    assert table["on disk"].tolist() == [False]  # an outside file is not even probed


def test_run_files_that_are_not_regular_or_too_big_are_refused(tmp_path):
    import os
    (tmp_path / "samples").mkdir()
    os.mkfifo(tmp_path / "samples" / "pipe.mp4")  # would block a plain open() forever
    with pytest.raises(view.OutsideRunError, match="not a regular file"):
        view.read_run_file(tmp_path, "samples/pipe.mp4")
    (tmp_path / "samples" / "big.mp4").write_bytes(b"x" * 100)
    with pytest.raises(view.OutsideRunError, match="limit"):
        view.read_run_file(tmp_path, "samples/big.mp4", limit=10)
    assert view.video_type("samples/a.webm") == "video/webm" and view.video_type("x.html") == "video/mp4"


def test_scan_runs_skips_a_store_with_bad_meta(tmp_path):
    import sqlite3
    for name in ("good", "bad"):
        with RunStore.create(tmp_path / name, {}) as s:
            s.finish()
    with sqlite3.connect(tmp_path / "bad" / "store.sqlite") as db:
        db.execute("UPDATE meta SET value = '{oops' WHERE key = 'config'")
    db.close()
    runs, skipped = view.scan_runs(tmp_path)
    assert [r.name for r in runs] == ["good"]
    assert [Path(f).name for f, _ in skipped] == ["bad"] and "cannot read" in skipped[0][1]
