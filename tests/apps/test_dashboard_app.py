"""apps/dashboard.py under Streamlit's AppTest, on real run stores: one produced by a short real
distillation (configs/distill/tiny.toml through `python -m lab distill`), one by the stand-in writer
(test_dashboard_writer.py) to compare with. Checks the run list, a selected run's charts, sample clip
and config, the comparison chart, live polling, and the empty / missing / corrupt cases, each a clear
message and never an exception."""

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from lab.runs.store import RunStore

from test_dashboard_writer import write_run

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "apps" / "dashboard.py")
TINY_DISTILL = REPO / "configs" / "distill" / "tiny.toml"


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory, sample_clips):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    write_run(root / "writer", steps=9, sample_every=4)
    from lab.cli import main
    with contextlib.redirect_stdout(io.StringIO()):  # the newest run: a real distillation, 6 steps
        assert main(["distill", "--config", str(TINY_DISTILL), "--out", str(root / "distill"), "--json"]) == 0
    return root


@pytest.fixture(autouse=True)
def _runs_env(monkeypatch):
    # _app sets the runs folder the way the server is started (never through the session); this
    # restores the environment after each test
    monkeypatch.setenv("LAB_DASHBOARD_RUNS", "")


def _app(root):
    # AppTest runs the script in this process: the environment stands for the server's --runs
    import os
    os.environ["LAB_DASHBOARD_RUNS"] = str(root)
    from streamlit.testing.v1 import AppTest
    return AppTest.from_file(APP, default_timeout=120).run()


def _no_failure(at):
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _select(at, label):
    return next(s for s in at.selectbox if s.label == label)


def _metrics(at):
    return {m.label: m.value for m in at.metric}


def _figures(at):
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _phase_names(fig):
    return {a["text"] for a in fig["layout"].get("annotations", [])}


def test_lists_runs_and_draws_the_newest(runs_root):
    at = _app(runs_root)
    _no_failure(at)
    runs = at.dataframe[0].value
    assert runs["run"].tolist() == ["distill", "writer"]  # newest first
    assert set(runs["status"]) == {"✓ finished"} and runs["step"].tolist() == [6, 8]
    assert _select(at, "run").value == "distill"
    assert _metrics(at)["step"] == "6" and _metrics(at)["phase"] == "finetune"
    figs = {}
    for panel in at.radio(key="panel").options:  # every panel of the run, one at a time
        at.radio(key="panel").set_value(panel).run()
        _no_failure(at)
        figs.update({f["layout"]["title"]["text"]: f for f in _figures(at)})
        if panel == "samples":
            assert len(at.get("video")) == 1 and at.caption[0].value.startswith("step 4: real | teacher | student")
        if panel == "config":
            assert '"wan2.1-tiny"' in at.json[0].proto.body
        if panel == "checkpoints":
            assert "★ best" in at.dataframe[1].value["best"].tolist()
        if panel == "events":
            assert {"phase", "eval"} <= set(at.dataframe[1].value["kind"])
    assert {"loss terms", "other scalars", "feature alignment per stage (train/feat/<stage>)", "val psnr",
            "val ssim", "val retention", "learning rate", "dynamic loss weights", "throughput and memory",
            "val/psnr across runs"} <= set(figs)
    stages = figs["feature alignment per stage (train/feat/<stage>)"]
    assert [t["name"] for t in stages["data"]] == [f"feat/{s}" for s in ("mid", "up0", "up1", "up2", "up3")]
    assert _phase_names(stages) == {"align", "joint", "finetune"}
    assert {t["name"] for t in figs["val psnr"]["data"]} == {"psnr", "psnr_vs_teacher"}


def test_selecting_a_run_and_comparing(runs_root):
    at = _app(runs_root)
    _select(at, "run").select("writer").run()
    _no_failure(at)
    assert _metrics(at)["step"] == "8"
    assert at.subheader[0].value.startswith("writer")
    assert set(at.multiselect[0].value) == {"distill", "writer"}
    _select(at, "metric").select("train/loss").run()
    compare = _figures(at)[-1]
    assert compare["layout"]["title"]["text"] == "train/loss across runs"
    assert {t["name"] for t in compare["data"]} == {"distill", "writer"}


def test_live_run_is_polled_incrementally(tmp_path):
    store = RunStore.create(tmp_path / "live", {"steps": 100})
    try:
        for step in range(3):
            store.log_scalars(step, {"train/loss": 1.0, "lr": 1e-3})
        at = _app(tmp_path)
        _no_failure(at)
        assert at.dataframe[0].value["status"].tolist() == ["● running"]
        assert _metrics(at)["step"] == "2"
        series = at.session_state["series"][str(tmp_path / "live")]
        polls = series.polls
        for step in range(3, 6):
            store.log_scalars(step, {"train/loss": 0.5, "lr": 1e-3})
        at.run()
        _no_failure(at)
        assert _metrics(at)["step"] == "5"
        same = at.session_state["series"][str(tmp_path / "live")]
        assert same is series and same.polls > polls  # the cache was kept and topped up, not rebuilt
        assert same.get("train/loss")[0] == [0, 1, 2, 3, 4, 5]
    finally:
        store.close()


def test_empty_store_says_no_step_yet(tmp_path):
    RunStore.create(tmp_path / "fresh", {"teacher": "mini-wan"}).close()
    at = _app(tmp_path)
    _no_failure(at)
    assert _metrics(at)["step"] == "—"
    assert any("has not logged a step yet" in i.value for i in at.info)
    at.radio(key="panel").set_value("config").run()
    assert '"teacher"' in at.json[0].proto.body


def test_empty_folder_says_no_runs(tmp_path):
    at = _app(tmp_path)
    _no_failure(at)
    assert any(f"no runs in {tmp_path}" in i.value for i in at.info)


def test_missing_folder_is_a_clear_error(tmp_path):
    at = _app(tmp_path / "nope")
    assert not at.exception
    assert len(at.error) == 1 and "does not exist" in at.error[0].value and "--runs" in at.error[0].value


def test_corrupt_store_is_skipped_with_a_warning(runs_root, tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "store.sqlite").write_bytes(b"this is not a database\x00" * 200)
    at = _app(tmp_path)
    _no_failure(at)
    assert len(at.warning) == 1 and "broken" in at.warning[0].value and "damaged" in at.warning[0].value
    assert any("no runs in" in i.value for i in at.info)


def test_store_corrupted_while_shown_gives_an_error_not_a_trace(tmp_path):
    write_run(tmp_path / "run", steps=2, sample_every=5)
    at = _app(tmp_path)
    _no_failure(at)
    db = tmp_path / "run" / "store.sqlite"
    for extra in (db.with_name("store.sqlite-wal"), db.with_name("store.sqlite-shm")):
        extra.unlink(missing_ok=True)
    db.write_bytes(b"garbage" * 1000)
    at.run()
    assert not at.exception
    assert not at.error
    assert len(at.warning) == 1 and "damaged" in at.warning[0].value
    assert any("no runs in" in i.value for i in at.info)


def test_runs_folder_comes_from_the_command_line(tmp_path, monkeypatch):
    # `streamlit run apps/dashboard.py -- --runs DIR` (what `python -m lab app dashboard` starts) puts
    # the arguments after -- in sys.argv; AppTest runs the script in this process, so patch them.
    RunStore.create(tmp_path / "cli-run", {}).close()
    monkeypatch.setattr("sys.argv", ["apps/dashboard.py", "--runs", str(tmp_path)])
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(APP, default_timeout=120).run()
    _no_failure(at)
    assert any(str(tmp_path) in c.value for c in at.caption)
    assert not at.text_input, "the runs folder must not be a field a browser user can change"
    assert at.dataframe[0].value["run"].tolist() == ["cli-run"]


def test_every_status_is_listed_and_a_failure_says_why(tmp_path):
    with RunStore.create(tmp_path / "a-failed", {}) as s:
        s.log_scalars(0, {"train/loss": float("nan")})
        s.finish("failed", error="the loss became NaN at step 0; lower optim.lr")
    with RunStore.create(tmp_path / "b-interrupted", {}) as s:
        s.log_scalars(0, {"train/loss": 1.0})
        s._set_meta(pid=2**22 + 12345)  # above Linux pid_max: a writer that is gone, so interrupted
    live = RunStore.create(tmp_path / "c-running", {})
    try:
        with RunStore.create(tmp_path / "d-finished", {}) as s:
            s.finish()
        at = _app(tmp_path)
        assert not at.exception
        table = at.dataframe[0].value.set_index("run")["status"].to_dict()
        assert table == {"a-failed": "✗ failed", "b-interrupted": "‖ interrupted", "c-running": "● running",
                         "d-finished": "✓ finished"}
        _select(at, "run").select("a-failed").run()
        assert [e.value for e in at.error] == ["the run failed: the loss became NaN at step 0; lower optim.lr"]
        assert _metrics(at)["loss"] == "nan"
    finally:
        live.close()


def _sql(run, statement, *args):
    import sqlite3
    with sqlite3.connect(run / "store.sqlite") as db:
        db.execute(statement, args)
    db.close()


def test_samples_outside_the_run_are_never_served(tmp_path):
    # issue 21, item 3: a store is data; one naming /etc/passwd (or a symlink to it) made the samples
    # panel serve that file as media
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"not yours")
    runs = tmp_path / "runs"
    with RunStore.create(runs / "run", {}) as s:
        s.log_scalars(0, {"train/loss": 1.0})
        (runs / "run" / "samples").mkdir(exist_ok=True)
        (runs / "run" / "samples" / "link.mp4").symlink_to(secret)
        s.finish()
    for step, path in ((1, str(secret)), (2, "../../secret.mp4"), (3, "samples/link.mp4"), (4, "/etc/passwd")):
        _sql(runs / "run", "INSERT INTO samples (step, name, path, wall) VALUES (?, 'triptych', ?, 0)", step, path)
    at = _app(runs)
    at.radio(key="panel").set_value("samples").run()
    _no_failure(at)
    assert not at.get("video"), "a file outside the run was served"
    assert len(at.warning) == 1 and "skipped 4 sample(s)" in at.warning[0].value
    assert "outside the run folder" in at.warning[0].value
    assert any("no sample clip yet" in i.value for i in at.info)


def test_a_sample_inside_the_run_is_served_as_bytes(tmp_path):
    with RunStore.create(tmp_path / "run", {}) as s:
        s.log_scalars(0, {"train/loss": 1.0})
        (tmp_path / "run" / "samples").mkdir(exist_ok=True)
        (tmp_path / "run" / "samples" / "t.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
        s.add_sample(0, "triptych", tmp_path / "run" / "samples" / "t.mp4")
        s.finish()
    at = _app(tmp_path)
    at.radio(key="panel").set_value("samples").run()
    _no_failure(at)
    assert len(at.get("video")) == 1 and not at.warning


def test_the_runs_folder_cannot_be_changed_from_the_session(tmp_path):
    # the old sidebar had a "runs folder" field any browser user could point anywhere
    RunStore.create(tmp_path / "mine" / "run", {}).close()
    RunStore.create(tmp_path / "other" / "secret-run", {}).close()
    from streamlit.testing.v1 import AppTest
    import os
    os.environ["LAB_DASHBOARD_RUNS"] = str(tmp_path / "mine")
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["runs_dir"] = str(tmp_path / "other")
    at.run()
    _no_failure(at)
    assert at.dataframe[0].value["run"].tolist() == ["run"]


@pytest.mark.parametrize("key, value", [("status", "{not json"), ("created", '"yesterday"'),
                                        ("status", "[1, 2]"), ("heartbeat", "[1]")])
def test_a_store_with_bad_meta_is_skipped_not_the_page(tmp_path, key, value):
    # issue 21, item 7: one store with bad JSON in its meta table took the whole page down
    with RunStore.create(tmp_path / "good", {}) as s:
        s.log_scalars(0, {"train/loss": 1.0})
        s.finish()
    with RunStore.create(tmp_path / "bad", {}) as s:
        s.log_scalars(0, {"train/loss": 1.0})
        s.finish("running" if key == "heartbeat" else "finished")
    _sql(tmp_path / "bad", "UPDATE meta SET value = ? WHERE key = ?", value, key)
    at = _app(tmp_path)
    _no_failure(at)
    assert at.dataframe[0].value["run"].tolist() == ["good"]
    assert len(at.warning) == 1 and "bad" in at.warning[0].value and "cannot read" in at.warning[0].value
