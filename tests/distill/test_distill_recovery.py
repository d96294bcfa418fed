"""A distillation survives being killed: SIGKILL at random moments (several seeds), then --resume, leaves
the rows, events and phases of an uninterrupted run, with no lost or duplicated ones; a second writer is
refused while a run trains; an unreadable newest checkpoint is set aside and the one before it used.

Runs are real processes killed with SIGKILL. Each is forked from a helper process that imported the lab
once (a fresh interpreter spends ~10 s importing torch and diffusers), so a seed costs one run's time.
"""

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lab.distill import distill
from lab.models import load_decoder
from lab.runs.lock import RunLockedError
from lab.runs.store import SESSION_EVENTS, RunReader

TINY = Path(__file__).resolve().parents[2] / "configs" / "distill" / "tiny.toml"
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the killed runs are forked from a helper process")

# Reads one JSON command per line. {"start": RUN, "resume": bool, "log": FILE} forks a child that runs the
# distillation and answers its pid; {"wait": pid, "kill": bool, "timeout": s} kills it (if asked), reaps it
# and answers how it ended. Nothing runs torch in the helper itself, so forking it is safe.
ZYGOTE = r"""
import json, os, signal, sys, time
import lab.distill.trainer
from lab.distill import distill

for line in sys.stdin:
    cmd = json.loads(line)
    if "start" in cmd:
        pid = os.fork()
        if pid == 0:
            fd = os.open(cmd["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            try:
                distill(None if cmd["resume"] else cmd["config"], cmd["start"], resume=cmd["resume"])
                code = 0
            except BaseException:
                import traceback
                traceback.print_exc()
                code = 1
            sys.stderr.flush()
            os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
        continue
    pid, deadline = cmd["wait"], time.time() + cmd.get("timeout", 300)
    if cmd.get("kill"):
        os.kill(pid, signal.SIGKILL)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done or time.time() > deadline:
            break
        time.sleep(0.05)
    if not done:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    print(json.dumps({"exit": os.waitstatus_to_exitcode(status) if done else None}), flush=True)
"""


class Zygote:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)

    def _ask(self, cmd: dict) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        while True:  # an import may print a line of its own
            line = self.proc.stdout.readline()
            assert line, "the helper process died"
            if line.startswith("{"):
                return json.loads(line)

    def start(self, out: Path, resume: bool) -> int:
        return self._ask({"start": str(out), "resume": resume, "config": str(TINY),
                          "log": str(out.parent / f"{out.name}.log")})["pid"]

    def wait(self, pid: int, kill: bool = False) -> int | None:
        return self._ask({"wait": pid, "kill": kill})["exit"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote(sample_clips):
    z = Zygote()
    yield z
    z.close()


def _wait_for_rows(out: Path, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (out / "store.sqlite").exists():
            with RunReader(out) as r:
                if r.last_step():
                    return
        time.sleep(0.05)
    raise AssertionError(f"{out}: no training step was logged within {timeout} s")


@pytest.fixture(scope="module")
def reference(zygote, tmp_path_factory):
    """An uninterrupted run in a child process, and how long it took. While it trains, a second writer
    (a --resume of the same folder) must be refused without touching it."""
    out = tmp_path_factory.mktemp("ref") / "run"
    t0 = time.time()
    pid = zygote.start(out, resume=False)
    _wait_for_rows(out)
    with pytest.raises(RunLockedError, match=f"pid {pid}"):
        distill(None, out, resume=True)
    with pytest.raises(RunLockedError, match=f"pid {pid}"):
        distill(TINY, out, overwrite=True)
    assert zygote.wait(pid) == 0, (out.parent / "run.log").read_text()[-3000:]
    return out, time.time() - t0


def _rows(out):
    with RunReader(out) as r:
        return {k: v for k, v in r.scalars().items() if not k.startswith("perf/")}


def _step_events(out):
    """The events the steps log (eval, best, phase, phase_end), without their wall times."""
    with RunReader(out) as r:
        return sorted(json.dumps({k: v for k, v in e.items() if k != "wall"}, sort_keys=True)
                      for e in r.events() if e["kind"] not in SESSION_EVENTS)


def _phases(out):
    with RunReader(out) as r:
        return [(p.name, p.start_step, p.end_step, p.reason) for p in r.phases()]


def _kept(out):
    """The checkpoints and samples the store lists: which steps, which one is best."""
    with RunReader(out) as r:
        return ([(c.step, c.is_best, c.metric) for c in r.checkpoints()], [(s.step, s.name) for s in r.samples()])


def test_the_first_writer_keeps_its_rows(reference):
    out, _ = reference
    with RunReader(out) as r:
        assert r.status() == "finished" and not r.events("resume")
        assert [s for s, _ in r.scalars(["phase"])["phase"]] == list(range(1, 7))
        assert len(r.events("eval")) == 4


@pytest.mark.slow
@pytest.mark.parametrize("seed,kills", [(0, 2), (1, 1), (2, 1)])
def test_sigkill_at_random_moments_then_resume_loses_and_duplicates_nothing(reference, zygote, tmp_path, seed,
                                                                            kills):
    ref, seconds = reference
    rng = random.Random(seed)
    out = tmp_path / "run"
    # Each attempt is killed at a random moment of its run (setup, a step, an evaluation, a checkpoint being
    # written...), the next one resumes what is there; the last resume runs to the end.
    killed = []
    for share in (1.0, 0.6)[:kills]:
        pid = zygote.start(out, resume=(out / "store.sqlite").exists())
        delay = rng.uniform(0.02, share) * seconds
        time.sleep(delay)
        killed.append((round(delay, 2), zygote.wait(pid, kill=True)))
    pid = zygote.start(out, resume=(out / "store.sqlite").exists())
    assert zygote.wait(pid) == 0, (killed, (tmp_path / "run.log").read_text()[-3000:])

    with RunReader(out) as r:
        assert r.status() == "finished", killed
        warnings = [e["message"] for e in r.events("warning")]
        assert len(warnings) == len(set(warnings)), warnings
        listed = r.checkpoints()
        assert all(r.resolve(c.path).is_dir() for c in listed) and all(r.resolve(s.path).is_file()
                                                                        for s in r.samples())
    a, b = _rows(ref), _rows(out)
    assert set(a) == set(b), killed
    for key in a:
        assert [s for s, _ in b[key]] == [s for s, _ in a[key]], (key, killed)   # no lost or duplicated rows
        assert [v for _, v in b[key]] == [v for _, v in a[key]], (key, killed)   # the same values, bit for bit
    assert _step_events(out) == _step_events(ref), killed                      # no lost or duplicated events
    assert _phases(out) == _phases(ref), killed
    assert _kept(out) == _kept(ref), killed
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"step-{c.step:07d}" for c in listed]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]            # no temporary files left
    z = torch.randn(1, 16, 2, 4, 4)
    for folder in ("best", "last"):
        assert load_decoder(str(out / folder)).decode(z).isfinite().all()


def _copy_run(ref: Path, dest: Path) -> Path:
    shutil.copytree(ref, dest, ignore=shutil.ignore_patterns("lab.lock"))
    return dest


def test_resume_sets_an_unreadable_checkpoint_aside_and_uses_the_one_before(reference, tmp_path):
    ref, _ = reference
    out = _copy_run(ref, tmp_path / "run")
    with RunReader(out) as r:
        steps = [c.step for c in r.checkpoints()]
    newest = out / "checkpoints" / f"step-{steps[-1]:07d}"
    weights = newest / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])   # cut short, as by a full disk
    final = distill(None, out, resume=True)
    assert final["step"] == 6
    with RunReader(out) as r:
        assert r.status() == "finished"                      # not re-marked failed
        skipped = r.events("checkpoint_skipped")
        assert len(skipped) == 1 and "cannot be read" in skipped[0]["reason"]
        assert r.events("resumed")[-1]["checkpoint"].endswith(f"step-{steps[-2]:07d}")
    assert (out / "checkpoints" / f"unreadable-step-{steps[-1]:07d}").is_dir()
    a, b = _rows(ref), _rows(out)
    assert {k: [s for s, _ in v] for k, v in a.items()} == {k: [s for s, _ in v] for k, v in b.items()}
    assert _step_events(out) == _step_events(ref)


def test_resume_clears_the_temporary_folders_a_killed_run_left(reference, tmp_path, monkeypatch):
    ref, _ = reference
    out = _copy_run(ref, tmp_path / "run")
    left = [out / ".last.k2j3h4", out / ".best.old", out / ".init.lab-tmp-999999-x", out / "checkpoints" /
            ".step-0000005.tmp"]
    for p in left:
        p.mkdir()
        (p / "config.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    # The resume stops in its setup (after the folder is opened); what it found must stay as it was.
    import lab.distill.trainer as trainer

    def no_clips(*a, **kw):
        raise trainer.ConfigError("stop here")
    monkeypatch.setattr(trainer, "load_val_clips", no_clips)
    with pytest.raises(trainer.ConfigError, match="stop here"):
        distill(None, out, resume=True)
    assert not any(p.exists() for p in left)
    assert (out / "notes.txt").read_text() == "mine"
    with RunReader(out) as r:
        assert r.status() == "finished"                      # a failed resume does not re-mark the run
        assert "stop here" in r.events("resume_failed")[-1]["message"]
