"""One writer per run folder: a second process is refused with a message naming the first one's pid, and the
lock goes away with its process, however it ends (SIGKILL included)."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from lab.runs.lock import LOCK_FILE, RunLock, RunLockedError

HOLD = textwrap.dedent("""
    import sys, time
    from lab.runs.lock import RunLock
    RunLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(120)
""")


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of tmp_path/run."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_writer_is_refused_with_the_first_ones_pid(tmp_path, holder):
    with pytest.raises(RunLockedError, match=f"pid {holder.pid}") as err:
        RunLock(tmp_path / "run").acquire()
    assert "\n" not in str(err.value) and f"kill {holder.pid}" in str(err.value)
    assert (tmp_path / "run" / LOCK_FILE).read_text().strip() == str(holder.pid)


def test_the_lock_dies_with_a_killed_writer(tmp_path, holder):
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with RunLock(tmp_path / "run"):
        assert (tmp_path / "run" / LOCK_FILE).read_text().strip() == str(os.getpid())
        with pytest.raises(RunLockedError):      # one writer also within a process
            RunLock(tmp_path / "run").acquire()
    with RunLock(tmp_path / "run"):              # released on exit
        pass


def test_distill_resume_is_refused_while_another_process_writes_the_run(tmp_path, holder):
    from lab.distill import distill, load_config
    from lab.runs.store import RunReader, RunStore
    from pathlib import Path
    tiny = Path(__file__).resolve().parents[2] / "configs" / "distill" / "tiny.toml"
    store = RunStore.create(tmp_path / "run", load_config(tiny).to_dict())
    store.log_scalars(1, {"train/loss": 1.0})
    store.close()
    for attempt in (lambda: distill(None, tmp_path / "run", resume=True),
                    lambda: distill(tiny, tmp_path / "run", overwrite=True)):
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
            attempt()
    with RunReader(tmp_path / "run") as r:      # untouched: no resume event, the rows as they were
        assert r.events() == [] and r.scalars() == {"train/loss": [(1, 1.0)]}


def test_teacher_training_is_refused_while_another_process_trains_the_run(tmp_path, holder):
    from lab.teachers.config import TrainConfig
    from lab.teachers.train import train
    cfg = TrainConfig.from_flags(model="wan2.1-tiny", steps=1, batch=1, frames=5, crop=32, threads=1)
    with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
        train(cfg, tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [LOCK_FILE]   # nothing written
