"""python -m lab app compare|dashboard: start the Gradio compare demo (in this process) or the Streamlit
distillation dashboard (as a subprocess). Both bind 127.0.0.1 unless --host says otherwise.

Whoever can open an app's page can use it, so what a page may read is fixed here, at start: the
dashboard shows the runs under --runs (no browser user can point it elsewhere); the compare demo
loads registered decoders and what lies under --models-dir, and reaches the hub only with
--allow-downloads."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from lab import paths
from lab.errors import LabError
from lab.cli.common import device_of

HELP = "start an app: the Gradio compare demo or the Streamlit distillation dashboard"
DESCRIPTION = (HELP + ". compare: pick a teacher and a clip, drag a keep ratio, compare decodes, timings and "
               "independence heatmaps (uploads: at most 100 MB, 120 s, 4096 px per side; clips are cut to 33 "
               "frames and a 256 px short side). dashboard: follow distillation runs.")
log = logging.getLogger("lab")


def add_arguments(p):
    p.add_argument("app", choices=["compare", "dashboard"], help="which app to start")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=None, help="port (default: compare 7860, dashboard 8501)")
    p.add_argument("--runs", default="runs",
                   help="dashboard: folder of runs to show, fixed for the server's life (default runs/)")
    p.add_argument("--models-dir", action="append", default=None, metavar="DIR",
                   help="compare: a folder whose saved decoders and weights the page may load (repeatable; "
                        "default: the lab's data/checkpoints and runs/); registered names always load")
    p.add_argument("--allow-downloads", action="store_true",
                   help="compare: let weights come from the Hugging Face hub (hub ids, a teacher's default hub "
                        "weights); without it the app never reaches the hub")
    p.add_argument("--device", default=None,
                   help="compare: where decoders run (cpu, cuda, cuda:N; default: cuda when there is one)")


def _require(module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise LabError(f"this app needs {module}: pip install -e \".[{extra}]\" (or pip install {module}).")


def _apps_module(name: str):
    """apps/ is not a package of the lab (it ships beside it), so load apps/NAME.py by path."""
    path = paths.REPO_ROOT / "apps" / f"{name}.py"
    if not path.exists():
        raise LabError(f"{path} is missing; restore it with git checkout -- apps/{name}.py")
    spec = importlib.util.spec_from_file_location(f"lab_apps_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(args):
    if args.app == "compare":
        _require("gradio", "apps")
        if args.device:
            os.environ["LAB_DEVICE"] = str(device_of(args.device))  # read by lab.compare.default_device
        port = args.port or 7860
        dirs = _models_dirs(args.models_dir)
        log.info("compare demo on http://%s:%d (Ctrl+C to stop)", args.host, port)
        with _sigterm_stops():
            _apps_module("compare").launch(host=args.host, port=port, models_dirs=dirs,
                                           allow_downloads=args.allow_downloads)
        return {"app": "compare", "url": f"http://{args.host}:{port}"}
    _require("streamlit", "apps")
    script = paths.REPO_ROOT / "apps" / "dashboard.py"
    if not script.exists():
        raise LabError(f"{script} is missing: the dashboard is not built in this checkout.")
    port = args.port or 8501
    runs = Path(args.runs).expanduser().resolve()  # absolute: the server's folder whatever its working directory
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", args.host,
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--", "--runs", str(runs)]
    log.info("dashboard on http://%s:%d (Ctrl+C to stop): %s", args.host, port, " ".join(cmd))
    code = _run_forwarding_signals(cmd)
    if code and code not in (-signal.SIGTERM, -signal.SIGINT):
        raise LabError(f"streamlit exited with status {code} (command: {' '.join(cmd)})")
    return {"app": "dashboard", "url": f"http://{args.host}:{port}"}


def _models_dirs(given: list[str] | None) -> list[Path] | None:
    """The --models-dir folders, each an existing folder (a typo would silently leave the page with
    nothing to load); None: the app's defaults."""
    if not given:
        return None
    dirs = [Path(d).expanduser() for d in given]
    for d in dirs:
        if not d.is_dir():
            raise LabError(f"--models-dir {d} is not a folder; pass an existing folder of saved decoders or weights.")
    return dirs


@contextlib.contextmanager
def _sigterm_stops():
    """SIGTERM stops the compare server as Ctrl+C does (Gradio closes, the app clears its temporary
    folders and cache) instead of killing the process with its files left behind."""
    if threading.current_thread() is not threading.main_thread():  # signals can only be set there
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_forwarding_signals(cmd: list[str]) -> int:
    """Run the server and pass SIGTERM/SIGINT on to it, so stopping this process never leaves an orphan
    streamlit server holding the port."""
    proc = subprocess.Popen(cmd)

    def forward(signum, _frame):
        proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
