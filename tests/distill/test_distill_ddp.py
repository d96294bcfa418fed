"""The same trainer under torch.distributed: 2 CPU processes (gloo) through torchrun's module form,
and SIGTERM marking a run interrupted without losing its checkpoints."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lab.distill import load_config
from lab.training.distributed import DistEnv
from lab.runs.store import RunReader

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "distill" / "tiny.toml"


def _env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _short_config(tmp_path, **changes) -> Path:
    cfg = load_config(TINY).to_dict()
    for ph in cfg["phases"]:
        ph["max_steps"] = 1
    cfg["phases"][2]["frames"] = None
    cfg.update({"eval_every": 1, "checkpoint_every": 1, "sample_every": 0, **changes})
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.fixture
def one_rank_gloo(tmp_path):
    """A real single-process gloo group (what torchrun's ranks share), torn down afterwards."""
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_dist_env_reduces_on_the_backend_device_and_pins_ddp_to_the_rank_gpu(one_rank_gloo, monkeypatch):
    env = DistEnv("cpu")
    env.world = 2  # a one-rank group sums one copy, so mean() halves: the all-reduce really ran
    seen = []
    real = torch.distributed.all_reduce
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda t, *a, **k: (seen.append(t.device), real(t, *a, **k)))
    assert env.mean({"b": 3.0, "a": 1.0}) == {"a": 0.5, "b": 1.5}
    assert seen == [torch.device("cpu")]
    env.barrier()
    ddp = env.wrap(torch.nn.Linear(2, 2))
    assert isinstance(ddp, torch.nn.parallel.DistributedDataParallel) and ddp.device_ids is None
    # NCCL takes CUDA tensors only: the reduce (and DDP) go to this rank's GPU.
    env.device = torch.device("cuda", 1)
    monkeypatch.setattr(torch.distributed, "get_backend", lambda *a: "nccl")
    assert env.reduce_device() == torch.device("cuda", 1)
    monkeypatch.setattr(torch.distributed, "get_backend", lambda *a: "gloo")
    assert env.reduce_device() == torch.device("cpu")
    made = {}
    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", lambda m, **kw: made.update(kw) or m)
    env.wrap(torch.nn.Linear(2, 2))
    assert made["device_ids"] == [1] and made["output_device"] == 1


@pytest.mark.slow
def test_two_process_gloo_run(tmp_path, sample_clips):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m", "lab",
           "distill", "--config", str(_short_config(tmp_path)), "--out", str(out), "--json"]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # both ranks print the final dict; only rank 0 wrote the store
    docs = [json.loads(d) for d in _json_docs(proc.stdout)]
    assert len(docs) == 2 and docs[0]["step"] == docs[1]["step"] == 3
    assert docs[0]["metrics"] == pytest.approx(docs[1]["metrics"])
    with RunReader(out) as r:
        assert r.status() == "finished"
        assert [p.name for p in r.phases()] == ["align", "joint", "finetune"]
        s = r.scalars()
        assert [st for st, _ in s["train/loss"]] == [1, 2, 3]
        assert s["perf/samples_per_s"] and r.checkpoints()


def _json_docs(text: str) -> list[str]:
    """Split concatenated pretty-printed JSON documents."""
    dec, docs, i = json.JSONDecoder(), [], 0
    while True:
        i = text.find("{", i)
        if i < 0:
            return docs
        obj, end = dec.raw_decode(text, i)
        docs.append(json.dumps(obj))
        i = end


@pytest.mark.slow
def test_sigterm_checkpoints_the_last_step_and_marks_the_run_interrupted(tmp_path, sample_clips):
    # No periodic checkpoint or evaluation: only the signal makes the run checkpoint mid-phase.
    cfg = _short_config(tmp_path, eval_every=1000, checkpoint_every=1000)
    data = json.loads(cfg.read_text())
    for ph in data["phases"]:
        ph["max_steps"] = 50
    cfg.write_text(json.dumps(data))
    out = tmp_path / "term"
    log = tmp_path / "distill.log"

    def past_step_one() -> bool:
        if not (out / "store.sqlite").is_file():
            return False
        with RunReader(out) as r:
            return (r.last_step() or 0) >= 2

    # stdout/stderr go to a file: an unread pipe fills up and blocks the trainer.
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "lab", "distill", "--config", str(cfg), "--out", str(out)],
                                cwd=REPO, env=_env(), stdout=sink, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.time() + 300
            while time.time() < deadline and proc.poll() is None and not past_step_one():
                time.sleep(0.2)
            assert proc.poll() is None, f"the run ended before it was signalled:\n{log.read_text()[-2000:]}"
            assert past_step_one(), f"the run did not get past step 1:\n{log.read_text()[-2000:]}"
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, log.read_text()[-2000:]
    with RunReader(out) as r:
        assert r.status() == "interrupted"
        assert r.checkpoints() and all(r.resolve(c.path).is_dir() for c in r.checkpoints())
        # The signal let the step finish and checkpointed it: no trained step is lost.
        assert r.checkpoints()[-1].step == r.last_step()
