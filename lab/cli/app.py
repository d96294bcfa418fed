"""python -m lab app compare|dashboard: start the Gradio compare demo (in this process) or the Streamlit
distillation dashboard (as a subprocess). Both bind 127.0.0.1 unless --host says otherwise."""

from __future__ import annotations

import importlib.util
import logging
import signal
import subprocess
import sys

from lab import paths
from lab.errors import LabError

HELP = "start an app: the Gradio compare demo or the Streamlit distillation dashboard"
DESCRIPTION = (HELP + ". compare: pick a teacher and a clip, drag a keep ratio, compare decodes, timings and "
               "independence heatmaps (uploads: at most 100 MB, 120 s, 4096 px per side; clips are cut to 33 "
               "frames and a 256 px short side). dashboard: follow distillation runs.")
log = logging.getLogger("lab")


def add_arguments(p):
    p.add_argument("app", choices=["compare", "dashboard"], help="which app to start")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=None, help="port (default: compare 7860, dashboard 8501)")
    p.add_argument("--runs", default="runs", help="dashboard: folder of runs to show (default runs/)")
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
            import os

            from lab.cli.common import device_of
            os.environ["LAB_DEVICE"] = str(device_of(args.device))  # read by lab.compare.default_device
        port = args.port or 7860
        log.info("compare demo on http://%s:%d (Ctrl+C to stop)", args.host, port)
        _apps_module("compare").launch(host=args.host, port=port)
        return {"app": "compare", "url": f"http://{args.host}:{port}"}
    _require("streamlit", "apps")
    script = paths.REPO_ROOT / "apps" / "dashboard.py"
    if not script.exists():
        raise LabError(f"{script} is missing: the dashboard is not built in this checkout.")
    port = args.port or 8501
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", args.host,
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--", "--runs", args.runs]
    log.info("dashboard on http://%s:%d (Ctrl+C to stop): %s", args.host, port, " ".join(cmd))
    code = _run_forwarding_signals(cmd)
    if code and code not in (-signal.SIGTERM, -signal.SIGINT):
        raise LabError(f"streamlit exited with status {code} (command: {' '.join(cmd)})")
    return {"app": "dashboard", "url": f"http://{args.host}:{port}"}


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
