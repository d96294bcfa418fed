"""The lab's one way of writing files and folders.

Every writer of the lab goes through here, so each rule is kept in one place:

- **atomic**: a reader, or a resumed run, sees the old file (or folder) or the new one, never half of one.
  Text, bytes and JSON are written by ``atomic_write_*``; a file a library writes (safetensors, torch.save,
  a video encoder, nbformat) is written to the temporary path ``atomic_path`` yields and renamed into place
  on success; a folder's files are written into ``staged_folder`` and put in place by ``install_folder``
  (swapped whole where the OS can, else file by file with the marker last); ``replace_folder`` puts a
  complete folder in place of another (a checkpoint), ``move_aside`` and ``remove_tree`` take one away.
- **ordinary permissions**: temporary-file APIs make files private, so a model or report written through
  one could not be read by the user's group; what the lab writes gets the mode a plain ``open``/``mkdir``
  would give it.
- **a user's files are the user's** (``check_output_folder``): the lab writes into a folder only when it is
  absent, empty or written by the lab before (each writer says how it knows its own folders), unless the
  user passes --overwrite; even then it replaces and removes only the files it writes (``FolderFiles``).

The checks before a write (``check_writable``) and the one-line error for a full disk live here too.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from lab.errors import DiskFullError, LabError, OutputPathError
from lab.pids import pid_alive


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


# ----- one file ----------------------------------------------------------------------------------------------

@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path in ``path``'s folder (hidden: ``.NAME.RANDOM<suffix>``) for a library to write the file
    to; on success it gets ordinary permissions and is renamed over ``path`` in one step, on any failure
    (an exception, Ctrl-C) it is removed and ``path`` is left as it was. ``suffix`` keeps the extension a
    writer needs (a video encoder picks its container by it, numpy adds .npz to a name without it).

        with atomic_path(out) as tmp:
            save_file(tensors, str(tmp))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        ordinary_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, value, indent: int | None = 2, **dumps) -> Path:
    """Write ``value`` as JSON (``json.dumps(value, indent=indent, **dumps)`` and a newline) atomically."""
    return atomic_write_text(path, json.dumps(value, indent=indent, **dumps) + "\n")


def move_into_place(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Rename ``src`` (a file or folder finished under a temporary name in ``dst``'s folder) to ``dst``, in one
    step: a file at ``dst`` is replaced, a folder at ``dst`` only when it is empty."""
    os.replace(src, dst)
    return Path(dst)


def move_aside(path: str | os.PathLike, aside: str | os.PathLike) -> Path:
    """Rename ``path`` (a file or folder) to ``aside`` in one step, replacing what an earlier move left there."""
    aside = Path(aside)
    _remove(aside)
    os.replace(path, aside)
    return aside


def remove_tree(path: str | os.PathLike) -> None:
    """Remove the folder ``path`` as one step a reader can see: renamed to ``.NAME.deleted`` beside it first,
    then deleted, so a kill midway leaves no half-deleted folder under its own name (the hidden one is
    removed by the next call, or by whoever clears the folder's temporary names)."""
    path = Path(path)
    trash = move_aside(path, path.with_name(f".{path.name}.deleted"))
    shutil.rmtree(trash, ignore_errors=True)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


# ----- folders the lab writes into a user's tree ------------------------------------------------------------

class FolderNotEmptyError(LabError, FileExistsError):
    """A target folder that holds files the lab did not write; the lab refuses to replace them."""


def check_output_folder(folder: str | os.PathLike, overwrite: bool, ours: Callable[[Path], bool], what: str,
                        refusal: str) -> None:
    """The folder rule of everything the lab writes into a folder: allowed when ``folder`` is absent, empty,
    written by the lab before (``ours(folder)``) or ``overwrite`` is set; a file there is refused (``what``
    names the option to change), any other non-empty folder refused with ``refusal``. Writes nothing."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FolderNotEmptyError(f"{folder} is a file, not a folder; choose another {what}.")
    if overwrite or not folder.exists() or not any(folder.iterdir()) or ours(folder):
        return
    raise FolderNotEmptyError(refusal)


@dataclass(frozen=True)
class FolderFiles:
    """The files one kind of folder the lab writes holds: the only files it replaces or removes there (the
    folder's other files are the user's), and its ``marker``, written last, whose presence says the lab
    wrote the folder. ``names`` are exact names; ``prefix`` with ``suffixes`` matches numbered files
    (weight shards)."""

    marker: str
    names: tuple[str, ...] = ()
    prefix: str | None = None
    suffixes: tuple[str, ...] = ()

    def owns(self, name: str) -> bool:
        """Whether a file named ``name`` is one the lab writes into this kind of folder."""
        return (name == self.marker or name in self.names or
                self.prefix is not None and name.startswith(self.prefix) and name.endswith(self.suffixes))

    def marks(self, folder: str | os.PathLike) -> bool:
        """Whether ``folder`` carries this kind's marker (the lab wrote it)."""
        return (Path(folder) / self.marker).is_file()


#: A decoder folder (``VideoDecoder.save``): diffusers' config and weights (maybe sharded) and the lab's marker,
#: which names the adapter that loads it. Run folders (lab.training.run_folder) hold decoders too.
DECODER_FOLDER = FolderFiles(marker="lab_decoder.json", names=("config.json",), prefix="diffusion_pytorch_model",
                             suffixes=(".safetensors", ".safetensors.index.json"))


def remove_owned_files(folder: str | os.PathLike, files: FolderFiles) -> None:
    """Remove the ``files`` a write put in ``folder`` (and the folder, once empty); other files stay."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if p.is_file() and files.owns(p.name):
            p.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()


# Staging folders are named ``.<name>.lab-tmp-<pid>-<random>`` next to the target, so a stale one (its process
# is gone) is recognised and removed by the next write to the same target.
_TMP_TAG = ".lab-tmp-"


@contextmanager
def staged_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """A new temporary folder beside ``folder`` to write a folder's files into before ``install_folder`` puts
    them in place; staging folders a killed process left for the same target are removed first. The
    folder is removed on leaving (after a swap it holds the previous files)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_stages(folder)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}{_TMP_TAG}{os.getpid()}-", dir=folder.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale_stages(folder: Path) -> None:
    prefix = f".{folder.name}{_TMP_TAG}"
    if not folder.parent.is_dir():
        return
    for p in folder.parent.iterdir():
        pid = p.name[len(prefix):].split("-", 1)[0] if p.name.startswith(prefix) else ""
        if pid.isdigit() and p.is_dir() and not pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def install_folder(tmp: str | os.PathLike, folder: str | os.PathLike, files: FolderFiles) -> None:
    """Put the files written into ``tmp`` (a ``staged_folder``) at ``folder``, with ordinary permissions (the
    staging folder, and some libraries' files, are private). An absent or empty ``folder`` is replaced by
    ``tmp`` in one rename; a folder holding only ``files`` is swapped with ``tmp`` in one step where the OS
    can (Linux): an interrupted write leaves the old folder or the new one, never a missing or half-written
    one. Elsewhere (the user's files in the folder, or no atomic swap) the files are moved in one by one,
    the marker last (``merge_folder``)."""
    tmp, folder = Path(tmp), Path(folder)
    ordinary_permissions(tmp)
    if not folder.exists():
        os.rename(tmp, folder)
        return
    entries = os.listdir(folder)
    if not entries:
        try:
            os.rename(tmp, folder)  # POSIX renames onto an empty folder in one step
            return
        except OSError:
            pass
    elif all(files.owns(e) and (folder / e).is_file() for e in entries) and exchange_paths(tmp, folder):
        return  # a folder of our files only: swapped whole, in one step
    merge_folder(tmp, folder, files)


def merge_folder(tmp: Path, folder: Path, files: FolderFiles) -> None:
    """Move the files of ``tmp`` into ``folder`` one by one, the marker last. Interrupted, it leaves the folder
    with some new and some old files; writing again repairs it. ``files`` of an earlier write that this one
    did not write (e.g. other weight shards) are removed; the folder's other files are kept."""
    written = sorted(os.listdir(tmp), key=lambda n: n == files.marker)
    for name in written:
        os.replace(tmp / name, folder / name)
    for p in folder.iterdir():
        if p.name not in written and p.is_file() and files.owns(p.name) and p.name != files.marker:
            p.unlink()


def replace_folder(tmp: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Put the complete folder ``tmp`` (written under a temporary name beside ``folder``) in place of ``folder``,
    whatever it holds: swapped in one step where the OS can (the old one is then removed), else the old one
    is removed and ``tmp`` renamed into place."""
    tmp, folder = Path(tmp), Path(folder)
    if folder.exists() and exchange_paths(tmp, folder):
        shutil.rmtree(tmp)  # now the old folder
    else:
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    return folder


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2():
    try:
        import ctypes  # deferred: ctypes and renameat2 are optional; Linux only, see _RENAMEAT2
        fn = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _renameat2() if sys.platform.startswith("linux") else None


def exchange_paths(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``): no moment where
    either is missing. Returns False where the OS or the filesystem cannot, so the caller falls back."""
    if _RENAMEAT2 is None:
        return False
    import ctypes  # deferred: ctypes and renameat2 are optional; Linux only, see _RENAMEAT2
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


# ----- before a write ----------------------------------------------------------------------------------------

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


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc``, then the exception it was raised from or while handling, and so on (each once)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from or while handling, says that the disk is full."""
    return any((isinstance(e, OSError) and e.errno in _DISK_FULL_ERRNOS)
               or any(t in str(e).lower() for t in _DISK_FULL_TEXT) for e in _chain(exc))


def _failed_file(exc: BaseException | None) -> str | None:
    """The file a disk-full OSError in ``exc``'s chain was writing, when it says."""
    return next((os.fsdecode(e.filename) for e in _chain(exc)
                 if isinstance(e, OSError) and e.errno in _DISK_FULL_ERRNOS and e.filename), None)


def disk_full_error(folder: str | os.PathLike, then: str, exc: BaseException | None = None) -> DiskFullError:
    """The one-line error for a full disk under ``folder``: which disk, what is free, and ``then`` (what to run
    once there is space). When ``exc`` (or an exception in its chain) names the file it failed to write, that
    file's disk is the one named: a full temporary or cache disk is not the output folder's."""
    written = _failed_file(exc)
    folder = Path(written if written is not None else folder).expanduser().absolute()
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
