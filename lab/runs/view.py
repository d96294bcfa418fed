"""What a run looks like on screen: series assembly, smoothing, phase bands, comparison frames and
plotly figures, for the Streamlit dashboard (apps/dashboard.py) and notebooks.

Nothing here imports Streamlit, so notebooks and tests use it directly. Everything reads a run
through ``RunReader`` (read-only, never blocks the writer). ``RunSeries`` keeps a run's scalars in
memory and polls only what is new (``RunReader.scalars(since_step=...)``), so a live view does not
re-read the whole store on every refresh.

A store is data: anyone who can write a run folder can make it name any path. ``contained`` and
``read_run_file`` resolve every path a store names (symlinks followed) and refuse those outside the
run's own folder, so the dashboard never serves another file of the machine.
"""

from __future__ import annotations

import math
import mimetypes
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lab.errors import LabError
from lab.runs.store import (Checkpoint, Phase, RunReader, RunStoreError, RunSummary, Sample,
                             list_runs_with_errors)

# Plain symbols, not emoji: a browser without an emoji font (headless chromium here) shows emoji as boxes.
STATUS_BADGE = {"running": "● running", "finished": "✓ finished", "failed": "✗ failed",
                "interrupted": "‖ interrupted"}
# Phase bands alternate between these fills; light enough that the curves stay readable.
PHASE_FILLS = ("rgba(99,110,250,0.08)", "rgba(239,85,59,0.08)", "rgba(0,204,150,0.08)",
               "rgba(171,99,250,0.08)")
VS_TEACHER = "_vs_teacher"
# train/* keys that are not loss terms: drawn on their own chart, not among the losses.
DIAGNOSTICS = {"train/grad_norm", "train/grad_scale"}


# -- incremental series -------------------------------------------------------------------------

@dataclass
class RunSeries:
    """A run's scalars, {key: ([steps], [values])}, kept up to date by ``poll``.

    Each poll re-reads the last step it already has (a trainer may log a step's validation scalars
    in a later transaction than its training scalars) and everything after it. A store whose last
    step went backwards was truncated by a resume; the series then reloads from scratch."""

    folder: str
    series: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    last_step: int | None = None
    polls: int = 0

    def poll(self, reader: RunReader) -> int:
        """Read what is new since the last poll; returns the number of points read."""
        store_last = reader.last_step()
        if store_last is None or (self.last_step is not None and store_last < self.last_step):
            self.series, self.last_step = {}, None
        since = -1 if self.last_step is None else self.last_step - 1
        new = reader.scalars(since_step=since)
        count = 0
        for key, points in new.items():
            steps, values = self.series.setdefault(key, ([], []))
            while steps and steps[-1] > since:  # the re-read last step replaces what we had of it
                steps.pop()
                values.pop()
            for step, value in points:
                steps.append(step)
                values.append(value)
            count += len(points)
        self.last_step = store_last
        self.polls += 1
        return count

    def keys(self) -> list[str]:
        return sorted(self.series)

    def get(self, key: str) -> tuple[list[int], list[float]]:
        return self.series.get(key, ([], []))

    def latest(self, key: str) -> float | None:
        steps, values = self.get(key)
        return values[-1] if values else None


def group_keys(keys: list[str]) -> dict[str, list[str]]:
    """Split scalar keys into the dashboard's panels (see the key conventions in store.py)."""
    groups: dict[str, list[str]] = {"losses": [], "stages": [], "validation": [], "lr": [], "weights": [],
                                    "perf": [], "other": []}
    for key in sorted(keys):
        if key.startswith("train/feat/"):
            groups["stages"].append(key)
        elif key in DIAGNOSTICS:
            groups["other"].append(key)
        elif key.startswith("train/"):
            groups["losses"].append(key)
        elif key.startswith("val/"):
            groups["validation"].append(key)
        elif key == "lr" or key.startswith("lr/"):
            groups["lr"].append(key)
        elif key.startswith("weight/"):
            groups["weights"].append(key)
        elif key.startswith("perf/"):
            groups["perf"].append(key)
        elif key != "phase":  # the phase index is drawn as bands, not as a curve
            groups["other"].append(key)
    return groups


def validation_groups(keys: list[str]) -> dict[str, list[str]]:
    """val/* keys by metric: {"psnr": ["val/psnr", "val/psnr_vs_teacher"], "retention": [...]}: a
    metric and its vs-teacher twin share one chart (same units)."""
    out: dict[str, list[str]] = {}
    for key in sorted(k for k in keys if k.startswith("val/")):
        metric = key[len("val/"):]
        base = metric[:-len(VS_TEACHER)] if metric.endswith(VS_TEACHER) else metric
        out.setdefault(base, []).append(key)
    return out


def smooth(values: list[float], weight: float) -> list[float]:
    """Exponential moving average with bias correction (as TensorBoard's smoothing slider), so the
    first points are not pulled towards zero. NaN points stay NaN and do not poison the average."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    if weight == 0.0:
        return list(values)
    out, avg, norm = [], 0.0, 0.0
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(float("nan"))
            continue
        avg = weight * avg + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out.append(avg / norm)
    return out


def series_frame(series: RunSeries, keys: list[str] | None = None) -> pd.DataFrame:
    """Long frame (step, key, value) of the chosen keys, for tables and downloads."""
    rows = [(s, k, v) for k in (keys or series.keys()) for s, v in zip(*series.get(k))]
    return pd.DataFrame(rows, columns=["step", "key", "value"])


# -- phases ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PhaseBand:
    idx: int
    name: str
    start: int
    end: int
    open: bool  # the phase is still running (its end is the last logged step)


def phase_bands(phases: list[Phase], last_step: int | None) -> list[PhaseBand]:
    """One band per phase, from its start step to its end (or to the last logged step while it is
    still open)."""
    bands = []
    for p in sorted(phases, key=lambda p: p.start_step):
        end = p.end_step if p.end_step is not None else max(p.start_step, last_step or p.start_step)
        bands.append(PhaseBand(p.idx, p.name, p.start_step, end, p.end_step is None))
    return bands


def phase_at(bands: list[PhaseBand], step: int | None) -> PhaseBand | None:
    if step is None:
        return None
    inside = [b for b in bands if b.start <= step <= b.end]
    return inside[-1] if inside else None


def add_phase_bands(fig: go.Figure, bands: list[PhaseBand], row: int | str | None = None,
                    col: int | str | None = None) -> go.Figure:
    """Shade each phase and draw a dashed line at every phase boundary, named at the top."""
    kw = {} if row is None else {"row": row, "col": col}
    for i, band in enumerate(bands):
        fig.add_vrect(x0=band.start, x1=max(band.end, band.start + 1e-9), fillcolor=PHASE_FILLS[i % len(PHASE_FILLS)],
                      line_width=0, layer="below", **kw)
        fig.add_vline(x=band.start, line_dash="dash", line_color="gray", line_width=1,
                      annotation_text=band.name, annotation_position="top left",
                      annotation_font_size=11, **kw)
    return fig


# -- figures ------------------------------------------------------------------------------------

def _layout(fig: go.Figure, title: str, height: int = 360) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=50, r=20, t=60, b=40),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0), hovermode="x unified")
    fig.update_xaxes(title_text="step")
    return fig


def line_figure(series: RunSeries, keys: list[str], title: str, bands: list[PhaseBand] | None = None,
                smoothing: float = 0.0, log_y: bool = False, y_title: str | None = None) -> go.Figure:
    """One curve per key. With smoothing, the raw curve stays as a faint line under the smoothed one."""
    fig = go.Figure()
    for key in keys:
        steps, values = series.get(key)
        if not steps:
            continue
        name = key.split("/", 1)[-1] if "/" in key else key
        if smoothing > 0:
            fig.add_trace(go.Scatter(x=steps, y=values, name=f"{name} (raw)", mode="lines",
                                     opacity=0.25, showlegend=False, legendgroup=key))
            fig.add_trace(go.Scatter(x=steps, y=smooth(values, smoothing), name=name, mode="lines",
                                     legendgroup=key))
        else:
            fig.add_trace(go.Scatter(x=steps, y=values, name=name, mode="lines+markers" if len(steps) < 30 else "lines",
                                     legendgroup=key))
    add_phase_bands(fig, bands or [])
    if log_y:
        fig.update_yaxes(type="log")
    if y_title:
        fig.update_yaxes(title_text=y_title)
    fig.update_layout(showlegend=True)  # plotly hides the legend of a lone curve, leaving it unnamed
    return _layout(fig, title)


PERF_PANELS = (("perf/step_s", "seconds / step", 1.0), ("perf/samples_per_s", "samples / s", 1.0),
               ("perf/peak_mem_bytes", "peak memory (MiB)", 1 / 2**20))


def perf_figure(series: RunSeries, bands: list[PhaseBand] | None = None) -> go.Figure:
    """Throughput and memory, one panel each (different units), sharing the step axis."""
    panels = [p for p in PERF_PANELS if series.get(p[0])[0]]
    extra = [k for k in group_keys(series.keys())["perf"] if k not in {p[0] for p in PERF_PANELS}]
    panels += [(k, k.split("/", 1)[1], 1.0) for k in extra]
    if not panels:
        return _layout(go.Figure(), "throughput and memory (nothing logged yet)")
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[p[1] for p in panels])
    for i, (key, label, scale) in enumerate(panels, start=1):
        steps, values = series.get(key)
        fig.add_trace(go.Scatter(x=steps, y=[v * scale for v in values], name=label, mode="lines"), row=i, col=1)
        for band in bands or []:
            fig.add_vline(x=band.start, line_dash="dash", line_color="gray", line_width=1, row=i, col=1)
    _layout(fig, "throughput and memory", height=220 * len(panels) + 60)
    fig.update_layout(showlegend=False)
    return fig


def compare_frame(runs: dict[str, RunSeries], key: str) -> pd.DataFrame:
    """(run, step, value) of one scalar across runs, for the comparison chart and its table."""
    rows = [(name, s, v) for name, rs in runs.items() for s, v in zip(*rs.get(key))]
    return pd.DataFrame(rows, columns=["run", "step", "value"])


def compare_figure(runs: dict[str, RunSeries], key: str, smoothing: float = 0.0, log_y: bool = False) -> go.Figure:
    """One scalar, one curve per run."""
    fig = go.Figure()
    frame = compare_frame(runs, key)
    for name, part in frame.groupby("run", sort=False):
        values = part["value"].tolist()
        fig.add_trace(go.Scatter(x=part["step"].tolist(), y=smooth(values, smoothing) if smoothing else values,
                                 name=name, mode="lines"))
    if log_y:
        fig.update_yaxes(type="log")
    fig.update_yaxes(title_text=key)
    return _layout(fig, f"{key} across runs")


def common_keys(runs: dict[str, RunSeries]) -> list[str]:
    """Keys logged by every run first (comparable), then keys some runs lack."""
    sets = [set(rs.keys()) for rs in runs.values()]
    if not sets:
        return []
    shared = set.intersection(*sets)
    return sorted(shared) + sorted(set.union(*sets) - shared)


# -- tables -------------------------------------------------------------------------------------

def runs_table(runs: list[RunSummary], now: float | None = None) -> pd.DataFrame:
    now = time.time() if now is None else now
    return pd.DataFrame([{
        "run": r.name, "status": STATUS_BADGE.get(r.status, r.status), "step": r.step, "phase": r.phase or "",
        "kind": r.kind, "updated": _ago(now - r.updated) if r.updated else "", "folder": r.path,
    } for r in runs], columns=["run", "status", "step", "phase", "kind", "updated", "folder"])


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def checkpoints_table(checkpoints: list[Checkpoint], folder: str | os.PathLike) -> pd.DataFrame:
    """Checkpoints with the best one marked, and whether each file is still on disk."""
    return pd.DataFrame([{
        "step": c.step, "best": "★ best" if c.is_best else "", "metric": c.metric_name or "",
        "value": c.metric, "path": c.path, "on disk": _on_disk(folder, c.path),
    } for c in checkpoints], columns=["step", "best", "metric", "value", "path", "on disk"])


def _on_disk(folder: str | os.PathLike, rel_path: str) -> bool:
    # a path outside the run reads as absent: the page must not probe the machine's other files
    target = contained(folder, rel_path)
    return target is not None and target.exists()


# -- files a run names --------------------------------------------------------------------------

class OutsideRunError(LabError, ValueError):
    """A path recorded in a run store that is not a regular file inside that run's folder."""


#: the largest sample clip the dashboard reads into memory to serve (the trainer's are a few MB)
MAX_MEDIA_BYTES = 256 * 2**20


def resolve(folder: str | os.PathLike, rel_path: str) -> Path:
    """A path recorded in the store (relative to the run folder when inside it) on this machine,
    unchecked: use ``contained`` before opening it."""
    p = Path(rel_path)
    return p if p.is_absolute() else Path(folder) / p


def contained(folder: str | os.PathLike, rel_path: str) -> Path | None:
    """The real path (symlinks followed) of a file the store names, or None when it lies outside the
    run folder (``../``, an absolute path elsewhere, a symlink leading out) or is no valid path."""
    try:
        root = Path(folder).resolve()
        target = resolve(root, rel_path).resolve()
    except (OSError, ValueError, TypeError, RuntimeError):  # a NUL byte, a number, a symlink loop
        return None
    return target if target.is_relative_to(root) else None


def read_run_file(folder: str | os.PathLike, rel_path: str, limit: int = MAX_MEDIA_BYTES) -> bytes:
    """The bytes of a regular file inside the run folder. The file is checked again once open (the same
    inode as the path, resolved afresh, inside the run), so a symlink swapped in between is refused too."""
    target = contained(folder, rel_path)
    if target is None:
        raise OutsideRunError(f"the run store names {rel_path!r}, which is outside the run folder {folder}; "
                              f"the dashboard only serves files inside a run. Re-render the sample inside the run.")
    # O_NONBLOCK: a FIFO planted under the sample's name must not hang the page
    fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        again = contained(folder, rel_path)
        if not stat.S_ISREG(st.st_mode) or again is None or not _same_file(again, st):
            raise OutsideRunError(f"{rel_path!r} in run {folder} is not a regular file inside the run (it changed "
                                  f"while being opened, or is a device or pipe); re-render the sample.")
        if st.st_size > limit:
            raise OutsideRunError(f"{rel_path!r} in run {folder} is {st.st_size / 2**20:.0f} MB, over the "
                                  f"dashboard's {limit / 2**20:.0f} MB limit for a sample; render shorter samples.")
        return f.read(limit + 1)[:limit]


def video_type(rel_path: str) -> str:
    """The MIME type a sample is served as: its video type by suffix, else mp4 (never text or html,
    whatever the file is called)."""
    guessed = mimetypes.guess_type(str(rel_path))[0] or ""
    return guessed if guessed.startswith("video/") else "video/mp4"


def _same_file(path: Path, st: os.stat_result) -> bool:
    try:
        now = os.stat(path)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)


def latest_sample(samples: list[Sample], folder: str | os.PathLike, name: str = "triptych") -> Sample | None:
    """The newest sample of that name whose file exists inside the run (a listed file may have been cleaned
    up; one outside the run folder is never shown)."""
    for s in sorted((s for s in samples if s.name == name), key=lambda s: s.step, reverse=True):
        target = contained(folder, s.path)
        if target is not None and target.is_file():
            return s
    return None


def refused_samples(samples: list[Sample], folder: str | os.PathLike) -> list[Sample]:
    """Samples whose recorded path leads outside the run folder (the dashboard says it skipped them)."""
    return [s for s in samples if contained(folder, s.path) is None]


# -- the run list -------------------------------------------------------------------------------

def scan_runs(root: str | os.PathLike) -> tuple[list[RunSummary], list[tuple[str, str]]]:
    """(runs newest first, [(folder, why it was skipped)]) under ``root``: ``store.list_runs_with_errors``
    (one bad store is skipped with its reason, never the whole page), with the dashboard's own message
    for a missing runs folder."""
    if not Path(root).is_dir():
        raise RunStoreError(f"runs folder {root} does not exist; start the dashboard with --runs and the folder your "
                            f"distillation runs write to (python -m lab app dashboard --runs DIR).")
    return list_runs_with_errors(root)


def headline(series: RunSeries) -> dict[str, float]:
    """The latest value of the numbers shown above the charts, where logged."""
    out = {}
    for key in ("train/loss", "val/psnr", "val/retention", "lr", "perf/samples_per_s"):
        value = series.latest(key)
        if value is not None:
            out[key] = value
    return out
