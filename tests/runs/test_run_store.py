"""The run store: every write is one transaction a concurrent reader sees whole or not at all, status survives
crashes, and damaged stores give clear errors."""

import math
import os
import subprocess
import sys
import textwrap
import time

import pytest

from lab.runs import RunReader, RunStore, RunStoreError, list_runs, list_runs_with_errors
from lab.runs import store as store_mod


def test_round_trip_of_every_record(tmp_path):
    s = RunStore.create(tmp_path / "r", {"lr": 1e-4, "best": float("inf")}, name="demo")
    s.start_phase(0, "align", 0, "start")
    for step in range(4):
        s.log_scalars(step, {"train/loss": 1.0 / (step + 1), "val/psnr": float("inf")})
    ckpt = tmp_path / "r" / "checkpoints" / "step3.safetensors"
    ckpt.write_bytes(b"x")
    s.add_checkpoint(3, ckpt, "val/psnr", 20.0, is_best=True)
    s.add_checkpoint(2, ckpt, "val/psnr", 19.0, is_best=False)
    s.start_phase(1, "joint", 4, "plateau of train/feat")
    s.add_sample(3, "triptych", tmp_path / "r" / "samples" / "s3.mp4")

    r = RunReader(tmp_path / "r")
    assert r.config() == {"lr": 1e-4, "best": float("inf")}
    assert r.status() == "running"
    assert r.scalars(["train/loss"])["train/loss"] == [(0, 1.0), (1, 0.5), (2, 1 / 3), (3, 0.25)]
    assert r.scalars(since_step=2)["train/loss"] == [(3, 0.25)]
    assert math.isinf(r.latest()["val/psnr"])
    assert [(p.name, p.start_step, p.end_step, p.reason) for p in r.phases()] == [
        ("align", 0, 4, "start"), ("joint", 4, None, "plateau of train/feat")]
    assert r.best_checkpoint().step == 3 and r.best_checkpoint().path == os.path.join("checkpoints", "step3.safetensors")
    assert r.resolve(r.samples()[0].path) == tmp_path / "r" / "samples" / "s3.mp4"
    summary = r.summary()
    assert (summary.name, summary.step, summary.phase, summary.status) == ("demo", 3, "joint", "running")

    s.finish(final={"val/psnr": 20.0})
    assert r.status() == "finished" and r.meta()["final"] == {"val/psnr": 20.0}


def test_create_refuses_an_existing_run_and_resume_truncates(tmp_path):
    s = RunStore.create(tmp_path / "r", {})
    s.start_phase(0, "align", 0)
    for step in range(6):
        s.log_scalars(step, {"train/loss": float(step)})
    s.start_phase(1, "joint", 5)
    s.close()
    with pytest.raises(RunStoreError, match="already holds a run"):
        RunStore.create(tmp_path / "r", {})
    s = RunStore.resume(tmp_path / "r")
    s.truncate_after(3)
    r = RunReader(tmp_path / "r")
    assert r.last_step() == 3
    assert [(p.name, p.end_step) for p in r.phases()] == [("align", None)]
    assert [e["kind"] for e in r.events()][-1] == "resume"


def test_a_dead_writer_reads_as_interrupted(tmp_path):
    code = textwrap.dedent(f"""
        from lab.runs import RunStore
        s = RunStore.create({str(tmp_path / 'r')!r}, {{}})
        s.log_scalars(0, {{'train/loss': 1.0}})
    """)  # exits without finish(): like a killed run
    subprocess.run([sys.executable, "-c", code], check=True)
    assert RunReader(tmp_path / "r").status() == "interrupted"


def test_stale_heartbeat_reads_as_interrupted(tmp_path, monkeypatch):
    s = RunStore.create(tmp_path / "r", {})
    s.log_scalars(0, {"a": 1.0})
    monkeypatch.setattr(store_mod.time, "time", lambda: time.monotonic() + 1e12)
    assert RunReader(tmp_path / "r").status() == "interrupted"


def test_reader_never_sees_half_a_step_while_another_process_writes(tmp_path):
    # The writer logs 40 keys per step in one transaction; every step the reader sees has all 40.
    code = textwrap.dedent(f"""
        from lab.runs import RunStore
        s = RunStore.create({str(tmp_path / 'r')!r}, {{}})
        for step in range(300):
            s.log_scalars(step, {{f'k{{i}}': float(step) for i in range(40)}})
        s.finish()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.time() + 60
        while not (tmp_path / "r" / store_mod.STORE_FILE).exists() and time.time() < deadline:
            time.sleep(0.01)
        checks = 0
        while proc.poll() is None and time.time() < deadline:
            try:
                with RunReader(tmp_path / "r") as r:
                    series = r.scalars()
            except RunStoreError:
                continue  # the schema is being created
            counts = {}
            for key, points in series.items():
                for step, _ in points:
                    counts[step] = counts.get(step, 0) + 1
            assert all(n == 40 for n in counts.values()), counts
            checks += 1
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    assert checks > 0
    assert RunReader(tmp_path / "r").status() == "finished"


def test_damaged_and_missing_stores_give_clear_errors(tmp_path):
    with pytest.raises(RunStoreError, match="is not a run"):
        RunReader(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / store_mod.STORE_FILE).write_bytes(b"this is not a database" * 100)
    with pytest.raises(RunStoreError, match="damaged"):
        RunReader(bad)
    RunStore.create(tmp_path / "good", {}).close()
    runs, errors = list_runs_with_errors(tmp_path)
    assert [r.name for r in runs] == ["good"] and errors and errors[0][0] == str(bad)
    assert [r.name for r in list_runs(tmp_path / "good")] == ["good"]
    with pytest.raises(RunStoreError, match="does not exist"):
        list_runs(tmp_path / "nowhere")


def test_truncate_forgets_the_events_of_the_steps_it_forgets_and_keeps_the_sessions_history(tmp_path):
    s = RunStore.create(tmp_path / "r", {})
    s.start_phase(0, "align", 0, "start")
    s.log_event(0, "warning", {"message": "no LPIPS weights"})
    for step in range(1, 7):
        s.log_scalars(step, {"train/loss": float(step)})
        if step % 2 == 0:
            s.log_event(step, "eval", {"val/psnr": float(step)})
    s.start_phase(1, "joint", 4, "max_steps (4)")
    s.log_event(5, "interrupted", {})
    s.close()
    s = RunStore.resume(tmp_path / "r")   # logs 'resume' at the last step, 6
    s.truncate_after(3)                    # resumed from the checkpoint of step 3: steps 4-6 are logged again
    with RunReader(tmp_path / "r") as r:
        assert [e["step"] for e in r.events("eval")] == [2]        # 4 and 6 would otherwise appear twice
        assert [e["name"] for e in r.events("phase")] == ["align"]
        assert [e["kind"] for e in r.events() if e["kind"] in store_mod.SESSION_EVENTS] == [
            "warning", "interrupted", "resume"]


def test_a_store_is_created_whole_or_not_at_all(tmp_path, monkeypatch):
    # Killed while it is created, a run leaves no store (so no half-made run) and nothing but leftovers
    # that a new start clears.
    def killed(*a, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(store_mod.RunStore, "_set_meta", killed)
    with pytest.raises(KeyboardInterrupt):
        RunStore.create(tmp_path / "r", {"lr": 1.0})
    monkeypatch.undo()
    assert not store_mod.is_run(tmp_path / "r")
    assert all(store_mod.is_run_leftover(p.name) for p in (tmp_path / "r").iterdir())
    RunStore.create(tmp_path / "r", {"lr": 1.0}).close()
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["checkpoints", "config.json", "samples",
                                                                  "store.sqlite"]   # the leftovers are gone
    with RunReader(tmp_path / "r") as r:
        assert r.config() == {"lr": 1.0} and r.status() == "running"



def test_a_run_on_read_only_storage_reads_without_creating_files(tmp_path, monkeypatch):
    # A WAL reader creates store.sqlite-shm beside the store, which fails on read-only storage ("attempt
    # to write a readonly database"). Where the folder is not writable, the store is read as immutable.
    # (Root can write anywhere, so the folder's read-only state is given through os.access.)
    from lab.runs import store as store_module
    from lab.runs.store import RunReader, RunStore
    run = tmp_path / "run"
    RunStore.create(run, {"a": 1}).close()
    assert not (run / "store.sqlite-shm").exists()
    monkeypatch.setattr(store_module.os, "access", lambda path, mode: False)
    reader = RunReader(run)
    assert reader.status() == "running"
    reader.close()
    assert not (run / "store.sqlite-shm").exists() and not (run / "store.sqlite-wal").exists()
