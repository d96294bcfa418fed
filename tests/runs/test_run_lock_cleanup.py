"""RUN/lab.lock is removed when its writer releases it (a clean exit), stays after a kill (a stale lock the
next writer takes over and then removes), and a writer that opened the file just before it was removed never
ends up holding a lock on the removed file while another process locks its replacement."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from lab.runs import lock as lock_module
from lab.runs.lock import LOCK_FILE, RunLock, RunLockedError

HOLD = textwrap.dedent("""
    import sys, time
    from lab.runs.lock import RunLock
    RunLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(120)
""")


def test_a_clean_exit_removes_the_lock_file(tmp_path):
    run = tmp_path / "run"
    with RunLock(run):
        assert (run / LOCK_FILE).read_text().strip() == str(os.getpid())
    assert run.is_dir() and not (run / LOCK_FILE).exists()
    lock = RunLock(run).acquire()  # release() outside a with block: the same
    lock.release()
    lock.release()  # twice is harmless
    assert list(run.iterdir()) == []


def test_a_killed_writers_stale_lock_is_taken_over_then_removed(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (run / LOCK_FILE).read_text().strip() == str(proc.pid)  # the stale file stays after a kill
    with RunLock(run):
        assert (run / LOCK_FILE).read_text().strip() == str(os.getpid())
    assert not (run / LOCK_FILE).exists()


def test_a_lock_taken_on_a_removed_file_is_retaken_on_the_new_one(tmp_path, monkeypatch):
    run = tmp_path / "run"
    first = RunLock(run).acquire()
    real_try_lock = lock_module._try_lock
    calls = []

    def first_releases_in_between(fd):
        # The second writer has opened the first one's file; the first releases (and removes) it before the
        # second one's lock call, which therefore locks a file no longer at RUN/lab.lock.
        if not calls:
            first.release()
        calls.append(fd)
        return real_try_lock(fd)

    monkeypatch.setattr(lock_module, "_try_lock", first_releases_in_between)
    second = RunLock(run).acquire()
    monkeypatch.setattr(lock_module, "_try_lock", real_try_lock)
    assert len(calls) == 2  # locked the removed file, saw it, then opened and locked the new one
    assert (run / LOCK_FILE).read_text().strip() == str(os.getpid())
    with pytest.raises(RunLockedError):  # the file at RUN/lab.lock is the one the second writer holds
        RunLock(run).acquire()
    second.release()
    assert not (run / LOCK_FILE).exists()
