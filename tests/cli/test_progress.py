"""Progress of long work (lab.progress): a bar with rate and time left on a terminal, one plain line per step
(or per N steps) when stderr is not a terminal, nothing under --json. The terminal cases run the real thing
under a pseudo-terminal (pty)."""

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from lab import paths
from lab.progress import Progress, set_enabled, track

# bench of one tiny decoder: probes, one warm-up and two timed decodes -> 4 counted decodes
BENCH = ["bench", "--decoders", "wan2.1-tiny", "--weights", "random", "--frames", "5", "--size", "32x32",
         "--repeats", "2", "--no-memory", "--no-macs"]
LINE = re.compile(r"^bench: (\d)/4 decodes \(\d+%\), [\d.]+ (decodes/s|s/decode)(, ETA \d+s|, \d+s)", re.M)


@pytest.fixture(autouse=True)
def _on(monkeypatch):
    monkeypatch.setenv("LAB_PROGRESS_GAP", "0")  # every line, however fast the steps (the gap is tested below)
    set_enabled(True)
    yield
    set_enabled(True)


def test_lines_when_not_a_terminal_with_rate_and_time_left():
    out = io.StringIO()
    with Progress("distill", 4, unit="step", stream=out) as p:
        for k in range(4):
            p.update(note=f"loss {k}")
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and "\r" not in out.getvalue()  # one line per step, no bar redraws in a log
    assert lines[0].startswith("distill: 1/4 steps (25%), ") and "ETA" in lines[0] and lines[0].endswith("(loss 0)")
    assert re.search(r"[\d.]+ (steps/s|s/step)", lines[1])
    assert lines[-1].startswith("distill: 4/4 steps (100%)") and "ETA" not in lines[-1]


def test_long_loops_write_one_line_per_n_steps():
    out = io.StringIO()
    with Progress("prune", 100, unit="group", stream=out) as p:
        for _ in range(100):
            p.update()
    assert [ln.split(" (")[0] for ln in out.getvalue().splitlines()] == [f"prune: {k}/100 groups" for k in
                                                                       range(5, 101, 5)]
    out = io.StringIO()
    p = Progress("eval", None, unit="stage", every=2, stream=out)
    for _ in range(5):
        p.update()
    assert out.getvalue().splitlines()[-1].startswith("eval: 4 stages, ")  # no total: count and rate only


def test_fast_loops_do_not_flood_a_log(monkeypatch):
    monkeypatch.setenv("LAB_PROGRESS_GAP", "0.2")
    out = io.StringIO()
    with Progress("prune", 50, unit="group", every=1, stream=out) as p:
        for _ in range(50):
            p.update()  # microseconds each: at most one line per 0.2 s, so none here
    assert out.getvalue() == ""
    with Progress("distill", 3, unit="step", every=1, stream=out) as p:
        for _ in range(3):
            time.sleep(0.25)
            p.update()
    assert [ln.split(" (")[0] for ln in out.getvalue().splitlines()] == [f"distill: {k}/3 steps" for k in (1, 2, 3)]


def test_off_writes_nothing(monkeypatch):
    out = io.StringIO()
    set_enabled(False)  # what the CLI does under --json
    list(track(range(3), "x"))
    with Progress("x", 3, stream=out) as p:
        p.update(3)
    set_enabled(True)
    monkeypatch.setenv("LAB_PROGRESS", "0")
    with Progress("x", 3, stream=out) as p:
        p.update(3)
    assert out.getvalue() == ""


def _read_pty(cmd: list[str], timeout: float = 300, sized: bool = True) -> tuple[int, str, str]:
    """Run ``cmd`` with stderr on a pseudo-terminal (stdout a pipe) of 24x120 characters, or of no size (a fresh
    pty, as some CI runners give); returns (rc, stdout, what the terminal got)."""
    master, slave = pty.openpty()
    if sized:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("LAB_PROGRESS", None)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=env,
                            cwd=paths.REPO_ROOT)
    # The slave stays open here until the child is gone: Linux may drop what is unread once every slave closes.
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                chunks.append(os.read(master, 65536))
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise AssertionError(f"{cmd} ran past {timeout} s")
    finally:
        os.close(slave)
        os.close(master)
    return proc.wait(), proc.stdout.read().decode(), b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("sized", [True, False])
def test_a_terminal_gets_a_bar_with_rate_and_time_left(sized):
    code = ("import time; from lab.progress import Progress\n"
            "with Progress('distill', 6, unit='step') as p:\n"
            "    for _ in range(6):\n"
            "        time.sleep(0.05); p.update(note='joint')\n")
    rc, _, tty = _read_pty([sys.executable, "-c", code], sized=sized)
    assert rc == 0
    assert "\r" in tty and "distill:" in tty and "6/6" in tty  # redrawn in place
    assert re.search(r"\d+/6 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+(step/s|s/step)", tty), tty  # elapsed<left, rate
    assert "distill: 1/6 steps (17%)" not in tty  # not the log lines


def test_a_bar_of_fast_steps_still_shows_its_last_count():
    """tqdm redraws at most every 0.1 s: steps faster than that must not leave only "0/N" on the screen."""
    code = ("from lab.progress import Progress\n"
            "with Progress('bench', 4, unit='decode') as p:\n"
            "    for _ in range(4):\n"
            "        p.update()\n")
    rc, _, tty = _read_pty([sys.executable, "-c", code])
    assert rc == 0 and re.search(r"4/4 \[\d\d:\d\d<\d\d:\d\d", tty), tty


@pytest.mark.slow
def test_a_command_shows_its_bar_on_a_terminal():
    rc, out, tty = _read_pty([sys.executable, "-m", "lab", *BENCH])
    assert rc == 0 and "wan2.1-tiny" in out
    assert re.search(r"bench: +\d+%\|.*\| \d/4 \[\d\d:\d\d<\d\d:\d\d", tty), tty[-2000:]
    assert not LINE.search(tty)


@pytest.mark.slow
def test_a_command_logs_lines_when_not_a_terminal_and_nothing_under_json(lab_cli):
    plain, as_json = lab_cli([BENCH, [*BENCH, "--json"]], env={**os.environ, "LAB_PROGRESS_GAP": "0"})
    assert plain["rc"] == 0 and as_json["rc"] == 0
    assert [int(m.group(1)) for m in LINE.finditer(plain["stderr"])] == [1, 2, 3, 4]  # one line per decode
    assert "bench:" not in as_json["stderr"] and "decodes" not in as_json["stderr"]
