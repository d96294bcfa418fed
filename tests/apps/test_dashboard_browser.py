"""The dashboard in a real headless browser (Playwright driving Debian's /usr/bin/chromium) while a
real distillation writes its run: the displayed step count must advance without a reload, and a
screenshot of the page is saved (its path is printed; run pytest with -s to see it).

Streamlit and the distillation run as subprocesses, always stopped at the end."""

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from lab.runs.store import RunReader, RunStoreError

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TINY_DISTILL = REPO / "configs" / "distill" / "tiny.toml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    # the subprocesses import the lab from this checkout, offline, on one thread
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _wait(predicate, timeout: float, what: str, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()  # None or False: not yet (0 is an answer: the step count can be 0)
        if value is not None and value is not False:
            return value
        for name, proc, log in procs:
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode} while waiting for {what}:\n"
                            f"{Path(log).read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _live_config(tmp_path: Path) -> Path:
    """tiny.toml with phases long enough to outlast the test (the run is stopped at the end)."""
    config = tomllib.loads(TINY_DISTILL.read_text())
    for phase in config["phases"]:
        phase["max_steps"] = 200
    config.update(eval_every=25, checkpoint_every=25, sample_every=25)
    path = tmp_path / "live.json"
    path.write_text(json.dumps(config))
    return path


def _last_step(run: Path):
    if not (run / "store.sqlite").is_file():
        return None
    try:
        with RunReader(run) as r:
            return r.last_step()
    except (RunStoreError, sqlite3.DatabaseError):  # created but not yet initialised: try again
        return None


def _shown_step(page) -> int | None:
    for text in page.locator('[data-testid="stMetric"]').all_inner_texts():
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines and lines[0] == "step" and len(lines) > 1 and lines[1].isdigit():
            return int(lines[1])
    return None


def test_browser_sees_the_live_step_count_advance(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent: apt-get install -y chromium (CI's .ci/run installs it)")
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the Python package)")

    runs, port = tmp_path / "runs", _free_port()
    runs.mkdir()
    logs = {name: tmp_path / f"{name}.log" for name in ("distill", "streamlit")}
    procs = []
    try:
        with open(logs["distill"], "w") as log:
            distill = subprocess.Popen([sys.executable, "-m", "lab", "distill", "--config", str(_live_config(tmp_path)),
                                        "--out", str(runs / "live")], cwd=REPO, env=_env(), stdout=log,
                                       stderr=subprocess.STDOUT)
        procs.append(("distill", distill, logs["distill"]))
        with open(logs["streamlit"], "w") as log:
            app = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "apps" / "dashboard.py"),
                                    "--server.address", "127.0.0.1", "--server.port", str(port),
                                    "--server.headless", "true", "--server.fileWatcherType", "none",
                                    "--browser.gatherUsageStats", "false", "--", "--runs", str(runs)],
                                   cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        procs.append(("streamlit", app, logs["streamlit"]))

        def healthy():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        _wait(healthy, 90, "streamlit to serve", procs)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1800})
                page.goto(f"http://127.0.0.1:{port}", timeout=60_000)
                # the page may open before the run has logged a step: it must pick the run up by itself
                first = _wait(lambda: _shown_step(page), 240, "the dashboard to show the run's step count", procs)
                _wait(lambda: (_last_step(runs / "live") or -1) > first, 120, "the distillation to log another step",
                      procs)
                later = _wait(lambda: (s := _shown_step(page)) is not None and s > first and s, 60,
                              f"the displayed step to advance past {first} without a reload", procs)
                headings = page.locator('[data-testid="stHeading"]').all_inner_texts()
                assert any(t.startswith("live · ● running") for t in headings), headings
                shot = tmp_path / "dashboard_live.png"
                page.wait_for_selector(".js-plotly-plot .main-svg", timeout=120_000)
                # a 2-core machine busy with the run and the page's refreshes can take a while to paint
                page.screenshot(path=str(shot), timeout=180_000)
            finally:
                browser.close()
        assert later > first and shot.stat().st_size > 10_000
        print(f"\ndashboard screenshot (steps {first} -> {later}): {shot}")
        keep = os.environ.get("LAB_SCREENSHOT_DIR")  # e.g. runs/screenshots, to keep it past tmp_path
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            print(f"copied to {shutil.copy(shot, Path(keep) / shot.name)}")
    finally:
        for _, proc, _ in reversed(procs):
            _stop(proc)
