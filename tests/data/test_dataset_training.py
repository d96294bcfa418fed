"""The trainers read a folder spec and a latent cache: tiny runs of the teacher trainer and the distiller."""

import tomllib
from pathlib import Path

import pytest
import torch

from lab.data.cache import LatentCache, encode_cache
from lab.distill import Callback, distill
from lab.runs.store import RunReader
from lab.teachers.config import TrainConfig
from lab.teachers.train import train

TINY = Path(__file__).resolve().parents[2] / "configs" / "distill" / "tiny.toml"


def tiny_distill(**data) -> dict:
    """configs/distill/tiny.toml cut to one 3-step phase of pixel terms, on the given data section."""
    cfg = tomllib.loads(TINY.read_text())
    cfg["data"].update(data)
    cfg["phases"] = [{"name": "joint", "losses": {"pixel_teacher_l1": 1.0, "pixel_real_l1": 0.5},
                      "max_steps": 3, "plateau": {"enabled": False}}]
    cfg.update(eval_every=3, checkpoint_every=2, sample_every=0)
    cfg.pop("gan", None)
    return cfg


class StopAt(Callback):
    def __init__(self, step):
        self.at = step

    def on_step(self, state):
        if state.step >= self.at:
            raise KeyboardInterrupt("stop for the test")


def _losses(out):
    with RunReader(out) as r:
        return [v for _, v in r.scalars()["train/loss"]]


def test_distill_streams_a_folder_and_resumes_on_the_same_batches(tmp_path, video_folder):
    cfg = tiny_distill(clips=[str(video_folder)], workers=1)
    result = distill(cfg, tmp_path / "run")
    assert result["step"] == 3
    straight = _losses(tmp_path / "run")
    # Stopped at step 3 (last checkpoint: step 2) and resumed, without loader processes this time: step 3's
    # streamed batch is the same, so the logged losses are identical.
    with pytest.raises(KeyboardInterrupt):
        distill(tiny_distill(clips=[str(video_folder)], workers=0), tmp_path / "again", callbacks=[StopAt(3)])
    resumed = distill(None, tmp_path / "again", resume=True)
    assert resumed["step"] == 3
    assert _losses(tmp_path / "again") == straight


def test_distill_reads_a_latent_cache(tmp_path, video_folder, monkeypatch):
    torch.manual_seed(0)
    encode_cache("wan2.1-tiny", [str(video_folder)], out=tmp_path / "cache", frames=5, size=32, per_file=1,
                 teacher_weights="random")
    steps, read = [], LatentCache.sample
    monkeypatch.setattr(LatentCache, "sample", lambda self, *a, step=None: steps.append(step) or read(self, *a, step=step))
    result = distill(tiny_distill(cache=str(tmp_path / "cache")), tmp_path / "run")
    assert result["step"] == 3 and steps == [1, 2, 3]  # every batch came from the cache, keyed by its step


def test_teacher_train_on_a_folder(tmp_path, video_folder):
    cfg = TrainConfig.from_flags(model="wan2.1-tiny", steps=2, batch=2, frames=5, crop=32, warmup=1, threads=1,
                      checkpoint_minutes=60.0, log_every=1, short_sides=(64,), clips=[str(video_folder)], workers=0)
    result = train(cfg, tmp_path / "run")
    assert result["step"] == 2 and all(map(torch.isfinite, torch.tensor(result["losses"])))
