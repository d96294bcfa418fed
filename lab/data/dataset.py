"""What a run trains on: a data spec (clip names, files, folders, globs, a manifest) -> video entries.

A spec is ``data.clips`` (a list) and/or ``data.manifest`` (one file):

* a bundled or sample clip name, optionally with a frame range: ``bikes``, ``bikes[0:192]``;
* a video file, optionally with a frame range: ``/videos/a.mp4``, ``/videos/a.mp4[10:200]``;
* a folder (every video under it, recursively) or a glob: ``/videos``, ``/videos/**/*.mp4``;
* a manifest, CSV (with a header) or JSONL, one video a row: ``path`` (relative paths are read from the
  manifest's folder), optional ``start`` / ``stop`` (a frame range) and ``split``. Rows whose split is
  neither empty nor ``train`` (``val``, ``test``, ``heldout``...) are held out: never sampled, not even when a
  folder or glob of the same spec holds their file.

The lab's held-out clips are refused however a spec reaches them (``lab.data.heldout``): by name, by the path
of the fetched sample clip, or by a copy's bytes, through a file, a folder, a glob or a manifest; 'bikes'
reached by path is read only up to its training stop, like the name 'bikes'. A file the spec reaches twice
(a name and a folder, a link and its target) is listed once.

``streamed(clips, manifest)`` says which loader a spec gets: clip names and single files keep the
in-memory ``ClipWindows`` exactly as before; a folder, a glob or a manifest (thousands of files) is
streamed from disk (``lab.data.stream``).
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from lab.data.clips import ClipSpec
from lab.data.heldout import training_file_range, training_range
from lab.data.samples import resolve_clip
from lab.errors import ConfigError, VideoReadError

log = logging.getLogger("lab.data")

#: File endings a folder spec picks up (a glob picks up whatever it matches).
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg")
#: Splits that are trained on; any other declared split is held out.
TRAIN_SPLITS = ("", "train")

_RANGE = re.compile(r"(.+)\[(\d*):(\d*)\]")


class NoUsableDataError(VideoReadError):
    """Every video of a data spec was unreadable, too short or held out: nothing is left to train on."""


@dataclass(frozen=True)
class VideoEntry:
    """One video to sample windows from: frames ``[start, stop)`` of ``path`` (``stop=None``: to the end)."""
    path: str
    start: int = 0
    stop: int | None = None
    split: str = ""

    def clip_spec(self) -> ClipSpec:
        return ClipSpec(self.path, self.path, self.start, self.stop)  # the path names it: basenames repeat

    def describe(self) -> str:
        return self.clip_spec().describe()


def _is_glob(item: str) -> bool:
    """``*``, ``?`` or ``[...]`` (not a frame range like ``name[0:192]``, not an existing file's own name)."""
    if _RANGE.fullmatch(item) and not any(c in _RANGE.fullmatch(item).group(1) for c in "*?["):
        return False
    return any(c in item for c in "*?[") and not Path(item).expanduser().is_file()


def is_pattern(item: str) -> bool:
    """A glob or an existing folder; ``name[0:192]`` is a frame range, not a glob."""
    return _is_glob(item) or Path(item).expanduser().is_dir()


def streamed(clips, manifest: str | None = None) -> bool:
    """True when a spec names a folder, a glob or a manifest: those are streamed from disk. Clip names and
    single files keep the in-memory loader (the built-in clips behave exactly as before)."""
    return bool(manifest) or any(is_pattern(str(c)) for c in clips or ())


def resolve_spec(clips=(), manifest: str | None = None) -> list[VideoEntry]:
    """The training entries of a spec, in a fixed order (sorted within each folder or glob, rows in
    manifest order), duplicates removed, held-out manifest rows dropped. Raises NoUsableDataError when
    nothing is left, naming what was looked at."""
    entries: list[VideoEntry] = []
    for item in clips or ():
        entries += _expand(str(item))
    held_back: dict[str, list[VideoEntry]] = {}  # file -> its held-out manifest rows
    if manifest:
        rows = read_manifest(manifest)
        for e in rows:
            if e.split not in TRAIN_SPLITS:
                held_back.setdefault(os.path.realpath(e.path), []).append(e)
        train_rows = [e for e in rows if e.split in TRAIN_SPLITS]
        for e in train_rows:
            for h in held_back.get(os.path.realpath(e.path), []):
                if _overlap(e, h):
                    raise ConfigError(f"{manifest}: the train row {e.path}[{e.start}:{e.stop or ''}] overlaps the "
                                      f"{h.split} row [{h.start}:{h.stop or ''}] of the same file; held-out frames "
                                      f"are never trained on: make the ranges disjoint.")
        # Entries from folders, globs and names: a file with held-out rows does not come back through them
        # (whole), while the manifest's own train rows of such a file stay: their ranges are disjoint.
        kept = []
        for e in entries:
            if os.path.realpath(e.path) in held_back:
                log.info("data: %s has held-out rows in the manifest; only its train rows are trained on", e.path)
                continue
            kept.append(e)
        entries = kept + [_checked_file(e, f"{manifest}: {e.path}", ranged=e.start != 0 or e.stop is not None)
                          for e in train_rows]
    seen, out = set(), []
    for e in entries:
        real = os.path.realpath(e.path)
        key = (real, e.start, e.stop)  # the same frames of the same file, however the spec named it
        if key not in seen:
            seen.add(key)
            out.append(e)
    if not out:
        raise NoUsableDataError(f"no training video in data.clips={list(clips or ())} "
                                f"data.manifest={manifest!r}: the folders and globs match no video file and the "
                                f"manifest has no row in split {' or '.join(repr(s) for s in TRAIN_SPLITS)}.")
    return out


def _overlap(a: VideoEntry, b: VideoEntry) -> bool:
    """Whether two frame ranges of one file share a frame (a stop of None runs to the end)."""
    a_stop = a.stop if a.stop is not None else float("inf")
    b_stop = b.stop if b.stop is not None else float("inf")
    return a.start < b_stop and b.start < a_stop


def check_training_data(clips=(), manifest: str | None = None) -> None:
    """Refuse a spec that reaches held-out content or nothing usable (``resolve_spec``'s errors) before a run
    folder is created: a refused run leaves nothing behind for the corrected command to trip over. Names and
    single files are checked by the config readers already (``training_item``)."""
    if streamed(clips, manifest):
        resolve_spec(clips, manifest)


def spec_key(clips=(), manifest: str | None = None) -> str:
    """A short hash of what a spec resolves to (paths, ranges, and each file's size and mtime), so a cache
    can tell whether it was built from the same data."""
    h = hashlib.sha256()
    for e in resolve_spec(clips, manifest):
        try:
            st = os.stat(e.path)
            stamp = (st.st_size, int(st.st_mtime))
        except OSError:
            stamp = None
        h.update(json.dumps([e.path, e.start, e.stop, stamp]).encode())
    return h.hexdigest()[:16]


def training_item(item: str) -> tuple[str, int, int | None] | None:
    """(name, start, stop) of the frames a data.clips item ('name[start:stop]', or a plain name or path) may
    train on, limited by ``lab.data.heldout.training_range``: ConfigError if it names held-out frames. None for
    a glob. Reads no file, so configs are checked with it before a run starts."""
    if _is_glob(item):
        return None
    m = _RANGE.fullmatch(item)
    if m:
        start, stop = int(m.group(2) or 0), int(m.group(3)) if m.group(3) else None
        return (m.group(1), *training_range(m.group(1), start, stop, ranged=True))
    return (item, *training_range(item))


def training_entry(item: str) -> VideoEntry:
    """The training entry of a clip name or a video file, with or without a frame range ('bikes[0:192]',
    '/videos/a.mp4'): held-out frames are refused or cut off by name (``training_item``) and by the file it
    resolves to (a held-out sample clip by path or by bytes: ``lab.data.heldout.training_file_range``)."""
    ranged = bool(_RANGE.fullmatch(item)) and not _is_glob(item)
    name, start, stop = training_item(item)
    entry = _checked(VideoEntry(str(_resolve_file(name)), start, stop), item)
    return _checked_file(entry, item, ranged=ranged)


def _checked_file(e: VideoEntry, where: str, ranged: bool = False) -> VideoEntry:
    start, stop = training_file_range(e.path, e.start, e.stop, ranged=ranged, where=where)
    return e if (start, stop) == (e.start, e.stop) else VideoEntry(e.path, start, stop, e.split)


def _expand(item: str) -> list[VideoEntry]:
    if _RANGE.fullmatch(item) and not _is_glob(item):
        return [training_entry(item)]
    path = Path(item).expanduser()
    if path.is_dir():
        # Hidden names are skipped: they are half-written files (write_video's '.NAME.tmp.mp4') or not data.
        files = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            log.warning("data: folder %s holds no video (%s); skipped", path, ", ".join(VIDEO_SUFFIXES))
        return [_checked_file(VideoEntry(f), f"{f} (in the folder {item})") for f in files]
    if _is_glob(item):
        files = sorted(f for f in glob.glob(str(path), recursive=True) if os.path.isfile(f))
        if not files:
            log.warning("data: glob %s matches no file; skipped", item)
        return [_checked_file(VideoEntry(f), f"{f} (matched by {item})") for f in files]
    return [training_entry(item)]


def _resolve_file(name: str) -> Path:
    return Path(resolve_clip(name))  # a bundled or sample name, or a path (fetches samples on first use)


def _checked(e: VideoEntry, where: str) -> VideoEntry:
    if e.stop is not None and e.stop <= e.start:
        raise ConfigError(f"{where}: the frame range [{e.start}:{e.stop}] is empty; write [start:stop] with "
                          f"stop > start, or [start:] for the rest of the clip.")
    return e


def read_manifest(path: str | os.PathLike) -> list[VideoEntry]:
    """Every row of a CSV (header ``path[,start,stop,split]``) or JSONL manifest, in file order."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"data.manifest {path} does not exist; give a .csv (header path,start,stop,split) or "
                          f".jsonl file (one {{\"path\": ...}} object a line).")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{n}: not a JSON object ({exc.msg}); write one {{\"path\": ...}} a line.") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{path}:{n}: expected a JSON object with a 'path', got {type(row).__name__}.")
            rows.append((n, row))
    elif path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or "path" not in [f.strip() for f in reader.fieldnames]:
            raise ConfigError(f"{path}: a CSV manifest needs a header row with a 'path' column "
                              f"(path,start,stop,split); got {reader.fieldnames}.")
        rows = [(n, {k.strip(): v for k, v in r.items() if k}) for n, r in enumerate(reader, 2)]
    else:
        raise ConfigError(f"data.manifest {path}: unknown format '{path.suffix}'; use .csv or .jsonl.")
    return [_row(path, n, row) for n, row in rows]


def _row(manifest: Path, n: int, row: dict) -> VideoEntry:
    where = f"{manifest}:{n}"
    p = str(row.get("path") or "").strip()
    if not p:
        raise ConfigError(f"{where}: the row has no 'path'.")
    file = Path(p).expanduser()
    if not file.is_absolute():
        file = manifest.parent / file  # relative to the manifest, so a dataset folder can move whole
    start, stop = _frame(row.get("start"), where, "start", 0), _frame(row.get("stop"), where, "stop", None)
    split = str(row.get("split") or "").strip().lower()
    return _checked(VideoEntry(str(file), start if start is not None else 0, stop, split), where)


def _frame(v, where: str, key: str, default):
    if v is None or (isinstance(v, str) and not v.strip()):
        return default
    try:
        f = int(v)
    except (TypeError, ValueError):
        f = -1
    if f < 0 or isinstance(v, bool):
        raise ConfigError(f"{where}: '{key}' must be a frame index >= 0 (or empty), got {v!r}.")
    return f
