"""One writer per run folder: an exclusive OS lock on ``RUN/lab.lock``, held for the writer's whole life.

The lock is ``fcntl.flock`` (``msvcrt.locking`` on Windows) on a file that holds the writer's pid, for
the message a second writer gets. The OS drops the lock when the process ends, however it ends (SIGKILL
included), so a killed run can be resumed at once, with no stale lock to delete. The file itself stays:
deleting it would let a third process lock a new file of the same name while the second holds the old.

    with RunLock(run_dir):          # raises RunLockedError, naming the pid, while another process writes
        ...write the run...
"""

from __future__ import annotations

import os
from pathlib import Path

from lab.errors import LabError

LOCK_FILE = "lab.lock"


class RunLockedError(LabError):
    """Another process is writing the run folder."""


class RunLock:
    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LabError(f"cannot write to {self.folder} ({exc.strerror}); choose a folder you can write to.") \
                from None
        if not _try_lock(fd):
            pid = _read_pid(fd)
            os.close(fd)
            raise RunLockedError(f"{self.folder} is in use by another process (pid {pid}); wait for it to end or "
                                 f"stop it (kill {pid}), then run the command again.")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file drops the lock
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _try_lock(fd: int) -> bool:
    try:
        import fcntl  # deferred: POSIX only
    except ImportError:  # Windows: lock one byte far past the pid, so the pid stays readable
        import msvcrt  # deferred: Windows only
        os.lseek(fd, 1 << 20, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _read_pid(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"
