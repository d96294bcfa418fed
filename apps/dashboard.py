"""Streamlit dashboard for distillation runs: is it converging, which phase is it in, what do the
student's frames look like now, how does it compare with the last run.

    python -m lab app dashboard --runs runs/distill --port 8501
    streamlit run apps/dashboard.py --server.address 127.0.0.1 -- --runs runs/distill

The runs folder is fixed when the server starts (``--runs``, or LAB_DASHBOARD_RUNS): anyone who can
open the page can read what it shows, so no browser user may point it at another folder. Files a
store names (sample clips) are served only from inside their run (lab.runs.view.read_run_file).

Thin on purpose: reading runs is lab.runs.store (RunReader: read-only, never blocks the trainer),
shaping data and drawing figures is lab.runs.view. This file only lays the page out.

Live runs refresh inside st.fragment(run_every=...): only the run panel and the comparison chart rerun,
and each refresh reads only the steps logged since the last one (view.RunSeries kept in
st.session_state), not the whole store.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sqlite3
import sys
import zlib
from pathlib import Path

import streamlit as st

if importlib.util.find_spec("lab") is None:  # `streamlit run apps/dashboard.py` in a checkout not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.runs import view  # noqa: E402
from lab.runs.store import RunReader, RunStoreError, RunSummary  # noqa: E402

DEFAULT_RUNS = "runs/distill"
RUNS_ENV = "LAB_DASHBOARD_RUNS"  # the runs folder when there is no command line (AppTest, notebooks)
DEFAULT_REFRESH_S = 2.0
IDLE_REFRESH_S = 10.0  # how often the run list looks for new runs while none is live
# ValueError/TypeError: a store whose meta or events hold values the lab cannot read (bad JSON)
READ_ERRORS = (RunStoreError, sqlite3.DatabaseError, OSError, ValueError, TypeError)


def runs_dir_from_args(argv: list[str]) -> str:
    """``--runs DIR`` from the arguments after ``streamlit run apps/dashboard.py --``: read on every
    rerun from the server's own command line and environment, never from the session, which a
    browser can write."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs", default=None)
    args, _ = parser.parse_known_args(argv)
    return args.runs or os.environ.get(RUNS_ENV) or DEFAULT_RUNS


def run_label(run: RunSummary, root: Path) -> str:
    """The run's folder relative to the runs folder: unique, and what the user typed with --out."""
    try:
        rel = Path(run.path).resolve().relative_to(root.resolve())
    except ValueError:
        return run.path
    return str(rel) if str(rel) != "." else run.name


def series_cache(folder: str) -> view.RunSeries:
    cache = st.session_state.setdefault("series", {})
    if folder not in cache:
        cache[folder] = view.RunSeries(folder)
    return cache[folder]


def remembered(widget, label: str, options: list[str], default, memory: str):
    """A selectbox/multiselect whose choice survives its options changing (a run appears, a run logs a
    new key). The browser resets a keyed select to its first option when the options change under it
    (seen live: the comparison metric jumped to 'lr'), so the widget's key carries a fingerprint of the
    options (a new widget when they change) and starts from the choice remembered here."""
    fingerprint = zlib.crc32("\x1f".join(options).encode())
    last = st.session_state.get(memory, default)
    if widget is st.multiselect:
        last = [o for o in last if o in options]
        value = widget(label, options, default=last, key=f"{memory}-{fingerprint:08x}")
    else:
        value = widget(label, options, index=options.index(last if last in options else default),
                       key=f"{memory}-{fingerprint:08x}")
    st.session_state[memory] = value
    return value


def chart(fig, key: str) -> None:
    st.plotly_chart(fig, width="stretch", key=key)


# -- sidebar --------------------------------------------------------------------------------------

def sidebar() -> dict:
    root = Path(runs_dir_from_args(sys.argv[1:])).expanduser()
    with st.sidebar:
        st.header("VAED Lab · runs")
        st.caption(f"runs folder: `{root}` (set when the dashboard starts: --runs DIR)")
        refresh = st.number_input("refresh every (s) while a run is live", min_value=0.5, max_value=60.0,
                                  value=DEFAULT_REFRESH_S, step=0.5, key="refresh_s")
        smoothing = st.slider("smoothing", min_value=0.0, max_value=0.95, value=0.0, step=0.05, key="smoothing",
                              help="exponential moving average of the curves (raw curves stay faint underneath)")
        log_y = st.checkbox("log-scale loss axes", value=True, key="log_y")
        st.button("rescan runs", key="rescan")
    return {"root": root, "refresh": float(refresh),
            "smoothing": float(smoothing), "log_y": bool(log_y)}


# -- one run --------------------------------------------------------------------------------------

def run_panel(run: RunSummary, label: str, opts: dict) -> None:
    """The selected run. Reruns on its own every few seconds while the run is live."""
    try:
        with RunReader(run.path) as reader:
            status = reader.status()
            series = series_cache(run.path)
            series.poll(reader)
            phases, samples = reader.phases(), reader.samples()
            checkpoints, meta = reader.checkpoints(), reader.meta()
            events = reader.events()
    except READ_ERRORS as exc:
        st.error(f"cannot read run {label}: {exc}")
        return

    # (when the run ends, runs_overview sees its status change and reruns the page, which turns
    # this panel's refresh off)
    bands = view.phase_bands(phases, series.last_step)
    current = view.phase_at(bands, series.last_step)
    st.subheader(f"{label} · {view.STATUS_BADGE.get(str(status), status)}")
    if status == "failed" and meta.get("error"):
        st.error(f"the run failed: {meta['error']}")
    cols = st.columns(6)
    cols[0].metric("step", "—" if series.last_step is None else f"{series.last_step}")
    cols[1].metric("phase", current.name if current else "—")
    head = view.headline(series)
    shown = (("train/loss", "loss", "{:.4g}"), ("val/psnr", "val PSNR (dB)", "{:.2f}"),
             ("val/retention", "retention", "{:.3f}"), ("perf/samples_per_s", "samples/s", "{:.3g}"))
    for col, (key, name, fmt) in zip(cols[2:], shown):
        col.metric(name, fmt.format(head[key]) if key in head else "—")

    # One panel at a time, not st.tabs: a live refresh then rebuilds and sends only the figures on
    # screen (and charts inside st.tabs redrawn by each refresh were left blank in Chromium).
    panel = st.radio("show", PANELS, horizontal=True, key="panel", label_visibility="collapsed")
    draw_panel(panel, run, series, bands, samples, checkpoints, meta, events, opts)


PANELS = ("losses", "per stage", "validation", "lr & weights", "throughput & memory", "samples", "checkpoints",
          "config", "events")
CHART_PANELS = PANELS[:5]


def draw_panel(panel, run, series, bands, samples, checkpoints, meta, events, opts) -> None:
    if panel in CHART_PANELS and not series.keys():
        st.info("this run has not logged a step yet (its store holds no scalars); the charts appear "
                "with the first logged step.")
        return
    groups = view.group_keys(series.keys())
    if panel == "losses":
        _draw(series, groups["losses"], "loss terms", bands, opts, "losses", log=True)
        if groups["other"]:
            _draw(series, groups["other"], "other scalars", bands, opts, "other")
    elif panel == "per stage":
        _draw(series, groups["stages"], "feature alignment per stage (train/feat/<stage>)", bands, opts, "stages",
              log=True, empty="no per-stage feature losses yet (train/feat/<stage> is logged in the "
                              "feature-alignment phase).")
    elif panel == "validation":
        val = view.validation_groups(series.keys())
        if not val:
            st.info("no validation yet (val/* is logged at each evaluation).")
        for metric, keys in val.items():
            chart(view.line_figure(series, keys, f"val {metric}", bands, y_title=metric), f"val-{metric}")
    elif panel == "lr & weights":
        flat = {**opts, "smoothing": 0.0}
        _draw(series, groups["lr"], "learning rate", bands, flat, "lr", empty="no learning rate logged.")
        _draw(series, groups["weights"], "dynamic loss weights", bands, flat, "weights",
              empty="no dynamic loss weights (weight/*) logged.")
    elif panel == "throughput & memory":
        chart(view.perf_figure(series, bands), "perf")
    elif panel == "samples":
        samples_panel(run, samples)
    elif panel == "checkpoints":
        if checkpoints:
            st.dataframe(view.checkpoints_table(checkpoints, run.path), hide_index=True)
        else:
            st.info("no checkpoint saved yet.")
    elif panel == "config":
        st.json(meta.get("config", {}), expanded=True)
    elif events:
        st.dataframe([{"step": e["step"], "kind": e["kind"],
                       "detail": {k: v for k, v in e.items() if k not in ("step", "kind", "wall")}}
                      for e in events], hide_index=True)
    else:
        st.info("no events yet.")


def samples_panel(run: RunSummary, samples) -> None:
    refused = view.refused_samples(samples, run.path)
    if refused:
        st.warning(f"skipped {len(refused)} sample(s) whose path is outside the run folder (e.g. {refused[-1].path!r}, "
                   f"step {refused[-1].step}); the dashboard only serves files inside a run.")
    sample = view.latest_sample(samples, run.path)
    if sample is None:
        st.info("no sample clip yet (the trainer renders real | teacher | student at each evaluation).")
        return
    try:  # the bytes, not the path: Streamlit would open the path itself, after our check
        clip = view.read_run_file(run.path, sample.path)
    except (view.OutsideRunError, OSError) as exc:
        st.error(f"cannot show the sample of step {sample.step}: {exc}")
        return
    st.caption(f"step {sample.step}: real | teacher | student")
    st.video(clip, format=view.video_type(sample.path))


def _draw(series, keys, title, bands, opts, key, log=False, empty=None) -> None:
    if not keys:
        st.info(empty or "nothing logged yet.")
        return
    chart(view.line_figure(series, keys, title, bands, smoothing=opts["smoothing"], log_y=log and opts["log_y"]), key)


# -- comparison -----------------------------------------------------------------------------------

def compare_panel(runs: list[RunSummary], labels: dict[str, str], selected: str, opts: dict) -> None:
    st.subheader("compare runs")
    by_label = {labels[r.path]: r for r in runs}
    default = [selected] + [name for name in by_label if name != selected][:1]
    chosen = remembered(st.multiselect, "runs", list(by_label), default, "compare_runs")
    if not chosen:
        st.info("pick one or more runs to compare.")
        return
    series, unreadable = {}, []
    for name in chosen:
        try:
            with RunReader(by_label[name].path) as reader:
                cache = series_cache(by_label[name].path)
                cache.poll(reader)
                series[name] = cache
        except READ_ERRORS as exc:
            unreadable.append(f"{name}: {exc}")
    for msg in unreadable:
        st.warning(f"left out of the comparison: {msg}")
    keys = view.common_keys(series)
    if not keys:
        st.info("the chosen runs have not logged any scalars yet.")
        return
    preferred = next((k for k in ("val/psnr", "train/loss") if k in keys), keys[0])
    metric = remembered(st.selectbox, "metric", keys, preferred, "compare_metric")
    log = opts["log_y"] and metric.startswith("train/")
    chart(view.compare_figure(series, metric, smoothing=opts["smoothing"], log_y=log), "compare")


def runs_overview(root: Path, known: set[str], labels: dict[str, str]) -> None:
    """The run list, redrawn on every refresh (status, step and phase move while runs are live).
    When a run folder appears, goes away, or turns readable (a store caught half-created shows as
    damaged until its writer has made its tables), the whole page reruns to pick it up."""
    try:
        runs, damaged = view.scan_runs(root)
    except RunStoreError as exc:
        st.error(str(exc))
        return
    if _listing_of(runs, damaged) != known:
        st.rerun()
    st.dataframe(view.runs_table(runs).assign(run=[labels.get(r.path, r.name) for r in runs]), hide_index=True,
                 key="runs_table")


def watch_for_new_runs(root: Path, known: set[str]) -> None:
    """Draws nothing; reruns the whole page when the first run appears."""
    if _listing(root) != known:
        st.rerun()


def _listing(root: Path) -> set[str]:
    try:
        return _listing_of(*view.scan_runs(root))
    except RunStoreError:
        return set()


def _listing_of(runs: list[RunSummary], damaged: list[tuple[str, str]]) -> set[str]:
    # statuses too: a run that ends turns the page's live refresh off
    return {f"run:{r.path}:{r.status}" for r in runs} | {f"damaged:{folder}" for folder, _ in damaged}


# -- page -----------------------------------------------------------------------------------------

def main() -> None:
    st.set_page_config(page_title="VAED Lab · distillation runs", layout="wide")
    opts = sidebar()
    root = opts["root"]
    st.title("Distillation runs")
    try:
        runs, damaged = view.scan_runs(root)
    except RunStoreError as exc:
        st.error(str(exc))
        return
    for folder, msg in damaged:
        st.warning(f"skipped {folder}: {msg}")
    if not runs:
        st.fragment(watch_for_new_runs, run_every=opts["refresh"])(root, _listing_of(runs, damaged))
        st.info(f"no runs in {root} yet. Start one with `python -m lab distill --config FILE --out "
                f"{root}/NAME`; it appears here as soon as it writes its store.")
        return

    labels = {r.path: run_label(r, root) for r in runs}
    live = any(r.status == "running" for r in runs)
    every = opts["refresh"] if live else None
    # the run list refreshes even when nothing is live (slower), to pick up a run that starts
    st.fragment(runs_overview, run_every=every or max(opts["refresh"], IDLE_REFRESH_S))(
        root, _listing_of(runs, damaged), labels)
    selected = remembered(st.selectbox, "run", [labels[r.path] for r in runs], labels[runs[0].path], "run")
    run = next(r for r in runs if labels[r.path] == selected)

    st.fragment(run_panel, run_every=every)(run, selected, opts)
    st.divider()
    st.fragment(compare_panel, run_every=every)(runs, labels, selected, opts)


try:
    main()
except Exception as exc:  # noqa: BLE001 - the page shows one clear line, never a stack trace
    st.error(f"the dashboard could not draw this page: {type(exc).__name__}: {exc}")
