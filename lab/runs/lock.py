"""One writer per run folder: an exclusive OS lock on ``RUN/lab.lock``, held for the writer's whole life.

The lock is ``fcntl.flock`` (``msvcrt.locking`` on Windows) on a file that holds the writer's pid, for
the message a second writer gets. The OS drops the lock when the process ends, however it ends (SIGKILL
included), so a killed run can be resumed at once: a file left by a crash is a stale lock nobody holds.
A writer that ends through ``release`` (a clean exit, or an error the lab handles) removes the file while it
still holds the lock. A process that opened the old file just before cannot then lock it unnoticed:
``acquire`` keeps a lock only on the file that is at ``RUN/lab.lock`` after locking, and otherwise opens
the new one, so two writers never each hold a lock on a different file of the same name. (On Windows,
where an open file cannot be deleted, the file stays.)

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
        while True:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise LabError(f"cannot write to {self.folder} ({exc.strerror}); choose a folder you can write "
                               f"to.") from None
            if not _try_lock(fd):
                pid = _read_pid(fd)
                os.close(fd)
                raise RunLockedError(f"{self.folder} is in use by another process (pid {pid}); wait for it to end "
                                     f"or stop it (kill {pid}), then run the command again.")
            if _is_at(fd, self.path):
                break
            os.close(fd)  # its holder released and removed it between our open and lock: lock the new file
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file (still holding the lock, so no other writer has it yet), then drop the lock."""
        if self._fd is not None:
            if os.name != "nt" and _is_at(self._fd, self.path):
                try:
                    self.path.unlink()
                except OSError:  # a read-only folder now, say: the lock still goes, the file stays (stale, harmless)
                    pass
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


def _is_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is the file now at ``path`` (not one removed since it was opened)."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read_pid(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"
