"""Writing files the way a user's files deserve: atomically (a reader, or a resumed run, sees the old file
or the new one, never half of one) and with the permissions an ordinary write would give them (temporary-file
APIs make files private, so a model or report written through one could not be read by the user's group)."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from lab.errors import DiskFullError, OutputPathError


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it; put back at once
    os.umask(mask)
    return mask


def ordinary_permissions(path: str | os.PathLike) -> None:
    """Give ``path`` (a file, or a folder and everything in it) the mode a plain ``open``/``mkdir`` would."""
    path, mask = Path(path), _umask()
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if not p.is_symlink():
            p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to a temporary file in the same folder, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        ordinary_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_writable(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse, before any work, an output path (a file or a folder to write) that cannot be written: a name
    longer than the file system allows, or a nearest existing folder this process cannot write in (a
    read-only folder or mount). Probing with a temporary file sees what permissions alone do not (root on a
    read-only mount). Writes nothing that stays; returns the path."""
    path = Path(path).expanduser()
    name_max = _name_max(path)
    if any(len(os.fsencode(part)) > name_max for part in path.parts):  # checked even where folders are missing
        raise OutputPathError(f"{flag} {_short(path)}: a name in it is longer than this file system allows "
                              f"(at most {name_max} bytes per name); choose a shorter path.")
    try:
        path.exists()  # raises for a path too long in all (Path.exists hides only "no such file" errors)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise OutputPathError(f"{flag} {_short(path)}: the path is longer than this file system allows; "
                                  f"choose a shorter one.") from None
        raise OutputPathError(f"{flag} {_short(path)} cannot be used ({exc.strerror}); choose another path.") \
            from None
    folder = path if path.is_dir() else next(p for p in path.parents if p.exists())
    if not folder.is_dir():
        raise OutputPathError(f"{flag} {_short(path)}: {folder} is a file, not a folder; choose another path.")
    if not os.access(folder, os.W_OK | os.X_OK) or not _can_create_in(folder):
        raise OutputPathError(f"{flag} {_short(path)}: {folder} is not writable; choose a folder you can write "
                              f"to (or fix its permissions).")
    return path


def _can_create_in(folder: Path) -> bool:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".lab-write-check-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(tmp)
    return True


def _name_max(path: Path) -> int:
    existing = next((p for p in (path, *path.parents) if _exists(p)), Path("/"))
    try:
        return os.pathconf(existing if existing.is_dir() else existing.parent, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # not POSIX, or the file system does not say
        return 255


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except OSError:
        return False


def _short(path: Path, keep: int = 80) -> str:
    """A path short enough for a one-line message."""
    text = str(path)
    return text if len(text) <= keep else f"{text[:keep // 2]}...{text[-keep // 2:]} ({len(text)} characters)"


_DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
# What the writers that are not Python's own say when the disk is full: safetensors (Rust's StorageFull),
# torch.save (its stream writer's "file write failed"), sqlite.
_DISK_FULL_TEXT = ("no space left on device", "storagefull", "disk quota exceeded", "database or disk is full")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from or while handling, says that the disk is full."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
            return True
        if any(t in str(exc).lower() for t in _DISK_FULL_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_error(folder: str | os.PathLike, then: str) -> DiskFullError:
    """The one-line error for a full disk under ``folder``: which disk, what is free, and ``then`` (what to run
    once there is space)."""
    folder = Path(folder).expanduser().absolute()
    existing = next((p for p in (folder, *folder.parents) if _exists(p)), Path("/"))
    mount = existing
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    try:
        free = f"{shutil.disk_usage(existing).free / 2**20:.0f} MiB free"
    except OSError:
        free = "free space unknown"
    return DiskFullError(f"the disk holding {folder} (mounted at {mount}) is full ({free}); free space there or "
                         f"use a folder on another disk, then {then}")
