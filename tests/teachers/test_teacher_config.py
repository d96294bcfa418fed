"""Teacher runs take distillation's config style (a nested TOML file, --config) and its multi-GPU path (torchrun,
DDP); the flat flags of ``python -m lab teacher train`` still work, filling the nested config."""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lab.cli import main
from lab.errors import LabError
from lab.runs.store import RunReader
from lab.teachers.checkpoint import checkpoint_folder
from lab.teachers.config import TrainConfig, load_teacher_config

REPO = Path(__file__).resolve().parents[2]
TINY = """
model = "wan2.1-tiny"
steps = 3
threads = 1
log_every = 1

[data]
clips = ["bbb-128"]
batch = 1
frames = 5
crop = 32
short_sides = [64]
workers = 0

[optim]
warmup_steps = 1
"""


def _config(tmp_path) -> Path:
    path = tmp_path / "teacher.toml"
    path.write_text(TINY)
    return path


def _run(argv) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return json.loads(out.getvalue())


def test_the_shipped_example_config_reads_and_a_typo_names_its_key(tmp_path):
    cfg = load_teacher_config(REPO / "configs" / "teachers" / "mini-wan.toml")
    cfg.validate()
    # 33-frame windows at batch 8: trained on 17, mini-wan drifted from frame 18 on (docs/results/long-clips.md)
    assert (cfg.data.frames, cfg.data.batch, cfg.export.eval_frames) == (33, 8, 49)
    assert cfg.optim.lr == 1e-3 and cfg.flat()["warmup"] == 100
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.replace("warmup_steps", "warmup"))
    with pytest.raises(LabError, match="unknown key 'warmup' in the teacher run's config.optim"):
        load_teacher_config(bad)


def test_a_config_file_with_a_flag_beside_it_trains(tmp_path):
    run = tmp_path / "run"
    result = _run(["teacher", "train", "--config", str(_config(tmp_path)), "--steps", "2", "--run", str(run),
                   "--json"])
    assert result["step"] == 2 and result["stopped_by"] == "steps"
    with RunReader(run) as r:
        config = r.config()
        assert r.status() == "finished" and [s for s, _ in r.scalars(["train/loss"])["train/loss"]] == [1, 2]
    assert config["steps"] == 2 and config["data"]["crop"] == 32 and config["optim"]["warmup_steps"] == 1


def test_the_flat_flags_fill_the_nested_config(tmp_path):
    run = tmp_path / "run"
    _run(["teacher", "train", "--model", "wan2.1-tiny", "--steps", "1", "--batch", "1", "--frames", "5",
          "--crop", "32", "--short-sides", "64", "--no-wan-clip", "--data", "bbb-128", "--warmup", "1",
          "--threads", "1", "--run", str(run), "--json"])
    with RunReader(run) as r:
        cfg = TrainConfig.from_dict(r.config())
    assert (cfg.model, cfg.steps, cfg.data.batch, cfg.data.short_sides, cfg.data.clips, cfg.optim.warmup_steps) == \
        ("wan2.1-tiny", 1, 1, (64,), ["bbb-128"], 1)
    assert cfg.export.every_minutes == 0.0 and cfg.data.wan_clip is False and cfg.data.registry_clips is False


def test_registry_clips_join_the_built_in_training_clips_when_asked():
    from lab.teachers.config import training_clips
    assert [c.name for c in training_clips(False)] == ["bigbuckbunny", "bikes"]
    clips = training_clips(False, include_registry=True)
    assert [c.name for c in clips] == ["bigbuckbunny", "bikes", "city", "earth"]
    assert clips[2].path.endswith("city.mpg") and clips[2].stop is None and clips[3].stop == 300  # none held out
    assert TrainConfig.from_flags(registry_clips=True).flat()["registry_clips"] is True


@pytest.mark.slow
def test_two_process_gloo_teacher_run(tmp_path, sample_clips):
    run = tmp_path / "ddp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    # --out, not --run: torchrun would read --run as its own --run-path
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m", "lab",
           "teacher", "train", "--config", str(_config(tmp_path)), "--out", str(run), "--json"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('"stopped_by": "steps"') == 2  # both ranks return the run's summary
    with RunReader(run) as r:  # only rank 0 wrote the store and checkpoints
        assert r.status() == "finished" and [s for s, _ in r.scalars(["train/loss"])["train/loss"]] == [1, 2, 3]
        assert [s for s, _ in r.scalars(["perf/samples_per_s"])["perf/samples_per_s"]] == [1, 2, 3]
    _, _, state = checkpoint_folder(run).pick("cpu", set_aside=False)
    assert state["step"] == 3 and len(state["data_rng"]) == 2  # each rank's generators, for a resume
    assert not torch.equal(state["data_rng"][0]["data"], state["data_rng"][1]["data"])  # ranks draw their own
