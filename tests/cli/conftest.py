"""Helpers of the CLI tests: many ``python -m lab`` command lines in separate processes for the price
of one start-up (cli_batch.py), optionally with networking refused, and the one human-readable run
of every command that the output and no-network tests share."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab import paths
from lab.cli import COMMANDS

BATCH = Path(__file__).with_name("cli_batch.py")

# Installed through PYTHONPATH: every process of a run (and the subprocesses it starts) refuses
# network connections and name lookups, and records the attempt with the command's LAB_CLI_CASE.
SITECUSTOMIZE = '''
import os
import socket

_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo
_LOCAL = {"localhost", "127.0.0.1", "::1", ""}


def _record(what):
    with open(os.environ["LAB_TEST_NET_LOG"], "a") as f:
        f.write(f"{os.environ.get('LAB_CLI_CASE', '-')}\\t{what}\\n")


def _host(h):
    return h.decode() if isinstance(h, bytes) else str(h or "")


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and _host(address[0]) not in _LOCAL:
        _record(f"connect {address!r}")
        raise ConnectionRefusedError(111, "network refused by the test")
    return _connect(self, address)


def getaddrinfo(host, *args, **kwargs):
    if _host(host) not in _LOCAL:
        _record(f"resolve {host!r}")
        raise socket.gaierror(socket.EAI_NONAME, "network refused by the test")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect
socket.getaddrinfo = getaddrinfo
'''

# Started servers (app) are tested in tests/apps.
SKIPPED = {"app"}
TINY = ["--weights", "random"]


def human_cases(tmp) -> dict[str, list[str]]:
    """One fast, human-readable (no --json) command line per CLI command: tiny test models with
    random weights, the bundled clip, configs/distill/tiny.toml."""
    return {
        "models": ["models"],
        "data": ["data", "list"],
        "encode": ["encode", "--teacher", "wan2.1-tiny", *TINY, "--video", "bbb-128", "--frames", "5",
                   "--out", f"{tmp}/z.pth"],
        "decode": ["decode", "--decoder", "wan2.1-tiny", *TINY, "--video", "bbb-128", "--frames", "5",
                   "--out", f"{tmp}/decoded.mp4"],
        "analyze": ["analyze", "--decoder", "wan2.1-tiny", *TINY, "--frames", "5", "--size", "32x32"],
        "prune": ["prune", "--teacher", "wan2.1-tiny", *TINY, "--keep", "0.5", "--frames", "5", "--size", "32x32",
                  "--out", f"{tmp}/pruned"],
        "eval": ["eval", "--decoder", "wan2.1-tiny", *TINY, "--video", "bbb-128", "--frames", "5", "--size", "32x32",
                 "--metrics", "psnr,ssim"],
        "table": ["table", "--decoders", "wan2.1-tiny", "--teacher", "wan2.1-tiny", "--clips", "carphone",
                  "--frames", "5", "--repeats", "1", "--no-vmaf"],
        "bench": ["bench", "--decoders", "wan2.1-tiny,ltx-video-tiny", *TINY, "--frames", "9", "--size", "32x32",
                  "--repeats", "1", "--no-memory"],
        "trace": ["trace", "--decoders", "wan2.1-tiny,wan2.1-tiny@fused", "--frames", "9", "--size", "64x64"],
        "teacher": ["teacher", "train", "--model", "wan2.1-tiny", "--steps", "1", "--batch", "1", "--frames", "5",
                    "--crop", "32", "--short-sides", "64", "--no-wan-clip", "--warmup", "1", "--run", f"{tmp}/teacher"],
        "profile": ["profile", "--decoder", "ltx-video-tiny", *TINY, "--frames", "9", "--size", "64x64",
                    "--repeats", "1"],
        "search": ["search", "--decoder", "wan2.1-tiny", *TINY, "--frames", "5", "--size", "32x32", "--repeats", "1",
                   "--candidates", "keep,conv2d", "--stages", "up3"],
        "distill": ["distill", "--config", str(paths.REPO_ROOT / "configs" / "distill" / "tiny.toml"),
                    "--out", f"{tmp}/distill"],
        "demo": ["demo", "--quick", "--teacher", "wan2.1-tiny", "--out", f"{tmp}/demo"],
        # after distill (the cases run in order): ship that run's student with its card
        "ship": ["ship", "--run", f"{tmp}/distill", "--config", str(paths.REPO_ROOT / "configs" / "distill" / "tiny.toml"),
                 "--name", "tiny-flash", "--dest", f"{tmp}/shipped"],
    }


def run_cli_batch(argvs: list[list[str]], env: dict | None = None, timeout: float = 900,
                  cwd: Path | None = None) -> list[dict]:
    """Each command line as ``python -m lab ARGV`` in its own process (in ``cwd``, default the checkout), one
    after the other: a list of {"rc", "stdout", "stderr"}."""
    proc = subprocess.run([sys.executable, str(BATCH)], input=json.dumps(argvs), capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd or paths.REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def network_refused_env(tmp: Path) -> dict:
    """The environment of a fresh machine without network: no offline switches, an empty hub cache and
    metric-weights folder, and the refusing sitecustomize (attempts logged to tmp/net.log)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "LAB_OFFLINE", "LAB_ALLOW_DOWNLOADS")}
    site = tmp / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH")) if p)
    env["LAB_TEST_NET_LOG"] = str(tmp / "net.log")
    env["HF_HOME"] = str(tmp / "hf-home")
    env["LAB_METRIC_WEIGHTS"] = str(tmp / "metric-weights")
    return env


def network_attempts(env: dict) -> dict[int, list[str]]:
    """Case index -> the connections and lookups it attempted."""
    log = Path(env["LAB_TEST_NET_LOG"])
    attempts: dict[int, list[str]] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        case, what = line.split("\t", 1)
        attempts.setdefault(int(case) if case.lstrip("-").isdigit() else -1, []).append(what)
    return attempts


def run_without_network(cases: dict[str, list[str]], tmp: Path) -> dict[str, dict]:
    """Name -> {"rc", "stdout", "stderr", "network": the attempts it made}, each run with networking refused."""
    env = network_refused_env(tmp)
    results = run_cli_batch(list(cases.values()), env=env)
    attempts = network_attempts(env)
    return {name: {**r, "network": attempts.get(i, [])} for i, (name, r) in enumerate(zip(cases, results))}


@pytest.fixture(scope="session")
def lab_cli():
    return run_cli_batch


@pytest.fixture(scope="session")
def cli_without_network():
    return run_without_network


@pytest.fixture(scope="session")
def human_runs(tmp_path_factory, sample_clips):
    """Every command once, human-readable, with networking refused (name -> run_without_network's result).
    ``sample_clips`` fetches the held-out clips first (table and distill validate on carphone)."""
    tmp = tmp_path_factory.mktemp("human-runs")
    cases = human_cases(tmp)
    assert set(cases) == set(COMMANDS) - SKIPPED, "add a case for the new command"
    return run_without_network(cases, tmp)
