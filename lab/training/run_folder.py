"""The run folder around the trainer: only the lab's own folders are written (a non-empty folder that is
not a run is refused unless ``overwrite``), one writer at a time (``lab.runs.lock``), a run is replaced only
when asked, and what a killed run left half-written (temporary folders) is cleared before it resumes.

What a run writes in its folder, and so all that ``clear_run`` removes (other files are never touched):
``store.sqlite`` (+ SQLite's -wal/-shm), ``config.json``, ``checkpoints/step-*`` (and ``unreadable-step-*``,
checkpoints set aside on resume), ``samples/triptych-*.mp4``, the decoder files of ``best/``, ``last/`` and
``init/`` (``lab.files.DECODER_FOLDER``), and their temporary folders.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lab.errors import ConfigError
from lab.runs.lock import RunLock
from lab.runs.store import CONFIG_FILE, STORE_FILE, RunReader, RunStoreError, is_run, is_run_leftover
from lab.files import DECODER_FOLDER, check_output_folder, remove_owned_files

RUN_STUDENTS = ("best", "last", "init")
CKPT_PREFIX = "step-"
UNREADABLE_PREFIX = "unreadable-step-"
SAMPLE_PREFIX = "triptych-"


def open_run_folder(out: str | Path, resume: bool, overwrite: bool = False, kind: str = "distill",
                    flag: str = "--out", can_overwrite: bool = True, pre_store: bool = False) -> RunLock:
    """Check ``out`` for a fresh run (``resume=False``) or a resume of a ``kind`` run, lock it for this process,
    and clear what an earlier writer left half-written. ``pre_store``: ``out`` holds a teacher run from before
    run stores (a state.pt), resumed as a run. Returns the held lock: release it when the run ends."""
    out = Path(out)
    if resume and overwrite:
        raise ConfigError("--overwrite starts the run in --out over; it cannot be combined with --resume.")
    if resume and not (is_run(out) or pre_store):
        raise RunStoreError(f"cannot resume {out}: it holds no run ({STORE_FILE} missing); start one with "
                            f"--config FILE --out {out}.")
    if not pre_store:
        check_run_target(out, overwrite or resume, flag, can_overwrite)
    if not overwrite:
        check_run_kind(out, kind, flag)
    lock = RunLock(out).acquire()
    try:
        if not resume and is_run(out) and not overwrite:
            raise RunStoreError(f"{out} already holds a run; resume it (--resume), replace it (--overwrite) or "
                                f"choose another --out.")
        if not resume:
            clear_run(out)  # nothing when the folder is new; with overwrite, the run's own entries
        remove_temps(out)
    except BaseException:
        lock.release()
        raise
    return lock


def check_run_target(out: Path, overwrite: bool = False, flag: str = "--out", can_overwrite: bool = True) -> None:
    """Raise unless a run may start in ``out``: new, empty, a run (which the caller then refuses or, with
    ``overwrite``, replaces), or any folder with ``overwrite`` (the rule of every folder the lab writes,
    ``check_output_folder``). Writes nothing. ``flag`` names the option that chose the folder;
    ``can_overwrite`` whether the command offers --overwrite for it."""
    fix = (", or pass --overwrite to write the run into it (the run's own files are replaced, others kept)"
           if can_overwrite else "")
    check_output_folder(out, overwrite, ours=_ours, what=flag, refusal=(
        f"{flag} {out} is not empty and is not a run of the lab (no {STORE_FILE}); choose a new or empty "
        f"folder{fix}."))


def check_run_kind(out: Path, kind: str, flag: str = "--out") -> None:
    """Raise if ``out`` holds a run of another kind: a teacher run is not resumed as a distillation, nor the
    reverse (their checkpoints hold different models)."""
    if not is_run(out):
        return
    with RunReader(out) as r:
        found = r.kind()
    if found != kind:
        raise RunStoreError(f"{flag} {out} holds a {found} run, not a {kind} run; choose another {flag} folder.")


def run_config(out: str | Path) -> dict:
    """The config a run was started with (``config.json``, or the store's copy), for ``--resume``."""
    out = Path(out)
    if not is_run(out):
        raise RunStoreError(f"cannot resume {out}: it holds no run ({STORE_FILE} missing); start one with "
                            f"--config FILE --out {out}.")
    if (out / CONFIG_FILE).is_file():
        return json.loads((out / CONFIG_FILE).read_text())
    with RunReader(out) as r:  # killed between writing the store and config.json
        return r.config()


def _ours(out: Path) -> bool:
    """A run, or a folder holding only what a run leaves before its store exists."""
    return is_run(out) or all(is_run_leftover(p.name) for p in out.iterdir())


def clear_run(out: Path) -> None:
    """Remove what a run wrote in ``out`` (see the module docstring); keep everything else."""
    if not out.is_dir():
        return
    for name in (STORE_FILE, f"{STORE_FILE}-wal", f"{STORE_FILE}-shm", CONFIG_FILE):
        (out / name).unlink(missing_ok=True)
    _remove_in(out / "checkpoints", lambda p: p.is_dir() and p.name.startswith((CKPT_PREFIX, UNREADABLE_PREFIX)))
    _remove_in(out / "samples", lambda p: p.is_file() and p.name.startswith(SAMPLE_PREFIX) and p.suffix == ".mp4")
    for name in RUN_STUDENTS:
        remove_owned_files(out / name, DECODER_FOLDER)
    remove_temps(out)


def remove_temps(out: Path) -> None:
    """Temporary files and folders of the run's writes. Called with the lock held: no write is under way,
    so every one of them was left by a killed writer."""
    for p in out.iterdir():
        if p.name.startswith(tuple(f".{s}." for s in (*RUN_STUDENTS, CONFIG_FILE))):
            _remove(p)
    ckpts = out / "checkpoints"
    if ckpts.is_dir():
        for p in ckpts.iterdir():
            if p.name.startswith(f".{CKPT_PREFIX}"):
                _remove(p)


def _remove_in(folder: Path, ours) -> None:
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if ours(p):
            _remove(p)
    if not any(folder.iterdir()):
        folder.rmdir()


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)
