"""The run store: what a training run records, readable live while the run writes it.

One run is one folder::

    RUN/
      store.sqlite        scalars, phases, events, checkpoints, samples, config, status (SQLite, WAL)
      config.json         the run's resolved config (also in the store), for humans and --resume
      checkpoints/        written by the trainer (atomic renames); listed in the store
      samples/            clips the trainer renders (real | teacher | student), listed in the store

Why SQLite in WAL mode: a writer and any number of readers (the Streamlit dashboard, a notebook)
work at once without locking each other out; every write is one transaction, so a reader never sees
half a row, and a killed process loses at most the transaction it was in. Readers open the file
read-only (``RunReader``) and never block the writer.

Status: the writer sets ``running`` at start and ``finished``/``failed`` at the end, and refreshes a
heartbeat as it logs. A run still marked ``running`` whose heartbeat is older than ``STALE_SECONDS``
(or whose process is gone, on the same host) is reported as ``interrupted``.

Scalar key conventions (what the dashboard and notebooks plot; a trainer may add more):
    train/loss                  total loss of the step
    train/<term>                each loss term, e.g. train/pixel, train/perceptual, train/gan_g,
                                train/gan_d, train/feat/<stage> (per-stage feature alignment)
    weight/<term>               the dynamic loss weight of a term at that step
    lr                          learning rate
    phase                       index of the current phase (0, 1, 2)
    perf/step_s, perf/samples_per_s, perf/peak_mem_bytes
    val/<metric>                validation vs the real clip: val/psnr, val/ssim, val/vmaf, ...
    val/<metric>_vs_teacher     validation vs the teacher's decode
    val/retention               student PSNR / teacher PSNR vs the real clip
Event kinds logged by the steps (a resumed run forgets those after its checkpoint and logs them again):
    phase, phase_end, eval, best
Event kinds of the run's sessions (kept: ``SESSION_EVENTS``):
    resume, resumed, interrupted, error, resume_failed, warning, config_changed, checkpoint_skipped
Sample names: ``triptych`` (real | teacher | student, side by side, mp4) and optionally ``student``.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError
from lab.files import atomic_write_text, move_into_place
from lab.jsonio import json_safe
from lab.pids import pid_alive
from lab.runs.lock import LOCK_FILE

STORE_FILE = "store.sqlite"
CONFIG_FILE = "config.json"
STALE_SECONDS = 120.0
STATUSES = ("running", "finished", "failed", "interrupted")
SESSION_EVENTS = ("resume", "resumed", "interrupted", "error", "resume_failed", "warning", "config_changed",
                  "checkpoint_skipped")
_STORE_TMP = f".{STORE_FILE}.tmp"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scalars (
    step INTEGER NOT NULL, key TEXT NOT NULL, value REAL, wall REAL NOT NULL,
    PRIMARY KEY (step, key));
CREATE INDEX IF NOT EXISTS scalars_key ON scalars (key, step);
CREATE TABLE IF NOT EXISTS phases (
    idx INTEGER PRIMARY KEY, name TEXT NOT NULL, start_step INTEGER NOT NULL,
    end_step INTEGER, reason TEXT, wall REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, step INTEGER NOT NULL, wall REAL NOT NULL,
    kind TEXT NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    step INTEGER PRIMARY KEY, path TEXT NOT NULL, metric_name TEXT, metric REAL,
    is_best INTEGER NOT NULL DEFAULT 0, wall REAL NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    step INTEGER NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL, wall REAL NOT NULL,
    PRIMARY KEY (step, name));
"""


class RunStoreError(LabError):
    """A run folder that is missing, empty or damaged."""


def _json(value) -> str:
    # NaN/inf are valid metric values (a PSNR of identical clips is inf); JSON has no literal for them, so they
    # are stored as the strings lab.jsonio writes ("inf", "nan") and turned back into floats on read.
    return json.dumps(json_safe(value), sort_keys=True, default=str)


def _unjson(text: str):
    def fix(v):
        if v in ("nan", "inf", "-inf"):
            return float(v)
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v
    return fix(json.loads(text))


@dataclass(frozen=True)
class Phase:
    idx: int
    name: str
    start_step: int
    end_step: int | None
    reason: str | None  # why this phase started: 'start', or how the previous phase ended (e.g. 'max_steps (60)')


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: str
    metric_name: str | None
    metric: float | None
    is_best: bool


@dataclass(frozen=True)
class Sample:
    step: int
    name: str
    path: str


@dataclass(frozen=True)
class RunSummary:
    path: str
    name: str
    kind: str
    status: str
    step: int | None
    phase: str | None
    created: float
    updated: float


class _Base:
    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.db_path = self.folder / STORE_FILE

    # -- reads (shared by writer and reader) ---------------------------------------------------
    def _rows(self, sql: str, args=()) -> list[tuple]:
        return self._conn.execute(sql, args).fetchall()

    def meta(self) -> dict:
        return {k: _unjson(v) for k, v in self._rows("SELECT key, value FROM meta")}

    def config(self) -> dict:
        return self.meta().get("config", {})

    def kind(self) -> str:
        """Which loop wrote the run: 'distill' or 'teacher' (runs from before kinds were recorded: 'distill')."""
        return self.meta().get("kind", "distill")

    def status(self) -> str:
        """running / finished / failed / interrupted (a 'running' run whose writer is gone)."""
        m = self.meta()
        status = m.get("status", "interrupted")
        if status != "running":
            return status
        stale = time.time() - float(m.get("heartbeat", 0)) > STALE_SECONDS
        gone = m.get("host") == socket.gethostname() and not pid_alive(int(m.get("pid", -1)))
        return "interrupted" if (stale or gone) else "running"

    def keys(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT DISTINCT key FROM scalars ORDER BY key")]

    def last_step(self) -> int | None:
        row = self._rows("SELECT MAX(step) FROM scalars")
        return row[0][0] if row else None

    def scalars(self, keys: list[str] | None = None, since_step: int = -1) -> dict[str, list[tuple[int, float]]]:
        """{key: [(step, value), ...]} for steps > since_step, in step order. A dashboard polls with
        since_step = the last step it has, so it only reads what is new."""
        sql = "SELECT key, step, value FROM scalars WHERE step > ?"
        args: list = [since_step]
        if keys:
            sql += f" AND key IN ({','.join('?' * len(keys))})"
            args += list(keys)
        out: dict[str, list[tuple[int, float]]] = {}
        for key, step, value in self._rows(sql + " ORDER BY key, step", args):
            out.setdefault(key, []).append((step, float("nan") if value is None else value))
        return out

    def latest(self) -> dict[str, float]:
        """The latest value of every scalar key."""
        rows = self._rows("SELECT s.key, s.value FROM scalars s JOIN (SELECT key, MAX(step) m FROM scalars "
                          "GROUP BY key) l ON s.key = l.key AND s.step = l.m")
        return {k: v for k, v in rows}

    def phases(self) -> list[Phase]:
        return [Phase(*r) for r in self._rows("SELECT idx, name, start_step, end_step, reason FROM phases ORDER BY idx")]

    def events(self, kind: str | None = None) -> list[dict]:
        sql, args = "SELECT step, wall, kind, payload FROM events", ()
        if kind:
            sql, args = sql + " WHERE kind = ?", (kind,)
        return [{"step": s, "wall": w, "kind": k, **_unjson(p)} for s, w, k, p in self._rows(sql + " ORDER BY id", args)]

    def checkpoints(self) -> list[Checkpoint]:
        return [Checkpoint(s, p, n, m, bool(b)) for s, p, n, m, b in
                self._rows("SELECT step, path, metric_name, metric, is_best FROM checkpoints ORDER BY step")]

    def best_checkpoint(self) -> Checkpoint | None:
        best = [c for c in self.checkpoints() if c.is_best]
        return best[-1] if best else None

    def samples(self) -> list[Sample]:
        return [Sample(*r) for r in self._rows("SELECT step, name, path FROM samples ORDER BY step, name")]

    def summary(self) -> RunSummary:
        m = self.meta()
        phases = self.phases()
        return RunSummary(str(self.folder), m.get("name", self.folder.name), m.get("kind", "?"), self.status(),
                          self.last_step(), phases[-1].name if phases else None,
                          float(m.get("created", 0)), float(m.get("heartbeat", m.get("created", 0))))

    def resolve(self, rel_path: str) -> Path:
        """A path recorded in the store, as a path on this machine."""
        p = Path(rel_path)
        return p if p.is_absolute() else self.folder / p

    def close(self) -> None:
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RunReader(_Base):
    """Read-only view of a run, safe while the run is being written (never blocks the writer)."""

    def __init__(self, folder: str | os.PathLike):
        super().__init__(folder)
        if not self.db_path.is_file():
            raise RunStoreError(f"{self.folder} is not a run: it has no {STORE_FILE}. Point at a folder made by "
                                f"`python -m lab distill --out RUN` (or a folder of such runs).")
        # A WAL reader needs the -shm file beside the store, which it cannot create in a folder it may not
        # write (a run copied to read-only storage, another user's run): there it reads the store as an
        # immutable file instead, which is safe because nobody can be writing into that folder through us.
        writable = os.access(self.folder, os.W_OK) and os.access(self.db_path, os.W_OK)
        query = "mode=ro" if writable else "mode=ro&immutable=1"
        try:
            self._conn = sqlite3.connect(f"file:{self.db_path}?{query}", uri=True, timeout=5.0,
                                         check_same_thread=False)
            self._conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            raise RunStoreError(f"the run store {self.db_path} cannot be read ({exc}); it is damaged or not a "
                                f"run store. Start the run again in a new folder (the damaged one is kept).") from exc


class RunStore(_Base):
    """The writer side. One writer per run; every method is one committed transaction."""

    def __init__(self, folder: str | os.PathLike, _conn: sqlite3.Connection):
        super().__init__(folder)
        self._conn = _conn
        self.previous_status: str | None = None  # set by resume()

    @classmethod
    def _connect(cls, db_path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(db_path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across process crashes in WAL mode (only an OS crash can lose the last
        # transactions), and much faster than FULL.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
        return conn

    @classmethod
    def create(cls, folder: str | os.PathLike, config: dict, kind: str = "distill",
               name: str | None = None) -> "RunStore":
        """A new run. Refuses a folder that already holds one (resume it with ``RunStore.resume``).

        The store is the run's marker (``is_run``), so it is written first and whole: built under a
        temporary name and renamed into place, a run killed while it starts leaves either a complete
        store or no run at all (only files that ``is_run_leftover`` recognises)."""
        folder = Path(folder)
        if (folder / STORE_FILE).exists():
            raise RunStoreError(f"{folder} already holds a run; resume it (--resume), replace it (--overwrite) "
                                f"or choose another --out.")
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / _STORE_TMP
        for p in (tmp, *(tmp.with_name(tmp.name + x) for x in ("-wal", "-shm", "-journal"))):
            p.unlink(missing_ok=True)
        now = time.time()
        draft = cls(folder, cls._connect(tmp))
        draft._set_meta(name=name or folder.name, kind=kind, config=config, created=now, status="running",
                        pid=os.getpid(), host=socket.gethostname(), heartbeat=now)
        draft.close()  # the last connection: SQLite folds the WAL into the file and removes it
        move_into_place(tmp, folder / STORE_FILE)
        atomic_write_text(folder / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True, default=str))
        (folder / "checkpoints").mkdir(exist_ok=True)
        (folder / "samples").mkdir(exist_ok=True)
        return cls(folder, cls._connect(folder / STORE_FILE))

    @classmethod
    def resume(cls, folder: str | os.PathLike) -> "RunStore":
        """Reopen an existing run for writing (after an interruption); marks it running again."""
        folder = Path(folder)
        if not (folder / STORE_FILE).is_file():
            raise RunStoreError(f"cannot resume {folder}: it holds no run ({STORE_FILE} missing).")
        try:
            store = cls(folder, cls._connect(folder / STORE_FILE))
            store.meta()
        except sqlite3.DatabaseError as exc:
            raise RunStoreError(f"cannot resume {folder}: its store is damaged ({exc}).") from exc
        store.previous_status = store.status()  # restored if the resume fails before it changes anything
        store.log_event(store.last_step() or 0, "resume", {"previous_status": store.previous_status})
        store._set_meta(status="running", pid=os.getpid(), host=socket.gethostname(), heartbeat=time.time())
        return store

    # -- writes ---------------------------------------------------------------------------------
    def _set_meta(self, **items) -> None:
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                   [(k, _json(v)) for k, v in items.items()])

    def _tx(self, sql_rows: list[tuple[str, list]]) -> None:
        # One transaction per call, heartbeat included: a reader sees all of it or none of it.
        with self._conn:
            self._conn.execute("BEGIN")
            for sql, rows in sql_rows:
                self._conn.executemany(sql, rows)
            self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('heartbeat', ?)",
                               (_json(time.time()),))

    def log_scalars(self, step: int, values: dict[str, float]) -> None:
        now = time.time()
        rows = [(int(step), k, None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v), now)
                for k, v in values.items()]
        self._tx([("INSERT OR REPLACE INTO scalars (step, key, value, wall) VALUES (?, ?, ?, ?)", rows)])

    def start_phase(self, idx: int, name: str, step: int, reason: str | None = None) -> None:
        """Close the open phase at ``step`` and open phase ``idx``."""
        now = time.time()
        self._tx([("UPDATE phases SET end_step = ? WHERE end_step IS NULL AND idx <> ?", [(int(step), idx)]),
                  ("INSERT OR REPLACE INTO phases (idx, name, start_step, end_step, reason, wall) "
                   "VALUES (?, ?, ?, NULL, ?, ?)", [(idx, name, int(step), reason, now)]),
                  ("INSERT INTO events (step, wall, kind, payload) VALUES (?, ?, ?, ?)",
                   [(int(step), now, "phase", _json({"idx": idx, "name": name, "reason": reason}))])])

    def end_phase(self, step: int) -> None:
        """Close the open phase at ``step`` (the run's last phase ended)."""
        self._tx([("UPDATE phases SET end_step = ? WHERE end_step IS NULL", [(int(step),)])])

    def log_event(self, step: int, kind: str, payload: dict | None = None) -> None:
        self._tx([("INSERT INTO events (step, wall, kind, payload) VALUES (?, ?, ?, ?)",
                   [(int(step), time.time(), kind, _json(payload or {}))])])

    def add_checkpoint(self, step: int, path: str | os.PathLike, metric_name: str | None = None,
                       metric: float | None = None, is_best: bool = False) -> None:
        """Record a checkpoint the trainer has already written (atomically) to ``path``. Paths are
        stored relative to the run folder when inside it, so a moved run stays readable."""
        rel = _relative(self.folder, path)
        rows = [("INSERT OR REPLACE INTO checkpoints (step, path, metric_name, metric, is_best, wall) "
                 "VALUES (?, ?, ?, ?, ?, ?)", [(int(step), rel, metric_name, metric, int(is_best), time.time())])]
        if is_best:
            rows.insert(0, ("UPDATE checkpoints SET is_best = 0", [()]))
        self._tx(rows)

    def remove_checkpoint(self, step: int) -> None:
        """Forget a checkpoint whose files the trainer deleted (it keeps only the last few and the best)."""
        self._tx([("DELETE FROM checkpoints WHERE step = ?", [(int(step),)])])

    def add_sample(self, step: int, name: str, path: str | os.PathLike) -> None:
        self._tx([("INSERT OR REPLACE INTO samples (step, name, path, wall) VALUES (?, ?, ?, ?)",
                   [(int(step), name, _relative(self.folder, path), time.time())])])

    def truncate_after(self, step: int) -> None:
        """Forget everything logged after ``step``: a resumed run restarts from its last checkpoint
        and re-logs the steps after it. Events of the run's sessions (``SESSION_EVENTS``: resumes,
        interruptions, errors, warnings) stay: they are history, not something the steps re-log."""
        keep = ",".join("?" * len(SESSION_EVENTS))
        self._tx([("DELETE FROM scalars WHERE step > ?", [(int(step),)]),
                  (f"DELETE FROM events WHERE step > ? AND kind NOT IN ({keep})", [(int(step), *SESSION_EVENTS)]),
                  ("DELETE FROM samples WHERE step > ?", [(int(step),)]),
                  ("DELETE FROM checkpoints WHERE step > ?", [(int(step),)]),
                  ("DELETE FROM phases WHERE start_step > ?", [(int(step),)]),
                  ("UPDATE phases SET end_step = NULL WHERE end_step > ?", [(int(step),)])])

    def heartbeat(self) -> None:
        self._set_meta(heartbeat=time.time())

    def finish(self, status: str = "finished", final: dict | None = None, error: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        items = {"status": status, "heartbeat": time.time()}
        if final is not None:
            items["final"] = final
        if error is not None:
            items["error"] = error
        self._set_meta(**items)


def is_run(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a run of the lab (its marker: the run store)."""
    return (Path(folder) / STORE_FILE).is_file()


def is_run_leftover(name: str) -> bool:
    """Files a run leaves before its store exists (the writer's lock, a store being created): a folder
    holding only these counts as empty, so a run killed while it started can be started again."""
    return name == LOCK_FILE or name.startswith(_STORE_TMP)


def _relative(folder: Path, path: str | os.PathLike) -> str:
    p = Path(path)
    try:
        return str(p.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(p)


def list_runs(root: str | os.PathLike) -> list[RunSummary]:
    """Every run under ``root`` (the folder itself if it is a run, else its sub-folders, two levels
    deep), newest first. Damaged stores are skipped; ``list_runs_with_errors`` reports them."""
    return list_runs_with_errors(root)[0]


def list_runs_with_errors(root: str | os.PathLike) -> tuple[list[RunSummary], list[tuple[str, str]]]:
    root = Path(root)
    if not root.is_dir():
        raise RunStoreError(f"runs folder {root} does not exist; pass --runs with the folder your "
                            f"distillation runs write to (python -m lab distill --out RUN).")
    candidates = [root] if (root / STORE_FILE).is_file() else sorted(
        {p.parent for pattern in (f"*/{STORE_FILE}", f"*/*/{STORE_FILE}") for p in root.glob(pattern)})
    runs, errors = [], []
    for folder in candidates:
        # Each run on its own: one damaged or foreign store is reported, never the whole listing lost.
        try:
            runs.append(_checked_summary(folder))
        except (RunStoreError, sqlite3.DatabaseError, OSError) as exc:
            errors.append((str(folder), str(exc)))
        except (ValueError, TypeError) as exc:
            errors.append((str(folder), f"its store holds a value the lab cannot read ({type(exc).__name__}: "
                                        f"{exc}); it is damaged or was not written by the lab. Start the run again "
                                        f"in a new folder."))
    runs.sort(key=lambda r: r.created, reverse=True)
    return runs, errors


def _checked_summary(folder: Path) -> RunSummary:
    """One run's summary, checked to be usable (its status and kind are text)."""
    with RunReader(folder) as reader:
        summary = reader.summary()
    if not isinstance(summary.status, str) or not isinstance(summary.kind, str):
        raise TypeError(f"status {summary.status!r} and kind {summary.kind!r} must be text")
    return summary
