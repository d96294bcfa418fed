"""The teacher trainer at small scale: the real loop on a tiny config of the real class, real video."""

import pytest
import torch

from lab.errors import LabError
from lab.runs.store import RunReader
from lab.teachers.config import TrainConfig
from teacher_configs import tiny_config
from lab.teachers.train import build_model, lr_at, train, vae_loss


def tiny(**kw) -> TrainConfig:
    return tiny_config(**{"steps": 40, "batch": 2, "warmup": 5, "log_every": 5, **kw})


def fixed_batch_loss(vae, cfg, data):
    x = data.sample(4, cfg.data.frames, cfg.data.crop, torch.Generator().manual_seed(123))
    with torch.no_grad():
        return vae_loss(vae, x, torch.Generator().manual_seed(7), cfg)[0].item()


def test_a_few_steps_reduce_the_loss(tmp_path, bundled_windows):
    cfg = tiny()
    before = fixed_batch_loss(build_model(cfg), cfg, bundled_windows)
    train(cfg, tmp_path / "run", data=bundled_windows)
    from lab.teachers.checkpoint import load_state
    state = load_state(tmp_path / "run")
    assert state["step"] == 40
    vae = build_model(cfg)
    vae.load_state_dict(state["model"])
    after = fixed_batch_loss(vae, cfg, bundled_windows)
    assert after < 0.8 * before, (before, after)
    with RunReader(tmp_path / "run") as r:
        assert [s for s, _ in r.scalars(["train/loss"])["train/loss"]] == list(range(5, 41, 5))  # every 5 steps


def test_resume_continues_identically(tmp_path, bundled_windows):
    cfg = tiny(steps=5)
    straight = train(cfg, tmp_path / "a", data=bundled_windows)["losses"]
    first = train(cfg, tmp_path / "b", data=bundled_windows, stop_at=3)
    assert first["step"] == 3 and first["losses"] == straight[:3]
    resumed = train(cfg, tmp_path / "b", data=bundled_windows)  # a new process would do the same
    assert resumed["losses"] == straight[3:]  # bitwise: model, optimizer, data and noise RNG restored


def test_resume_refuses_a_different_run(tmp_path, bundled_windows):
    train(tiny(steps=1), tmp_path / "run", data=bundled_windows)
    with pytest.raises(LabError, match="different crop"):
        train(tiny(steps=2, crop=64), tmp_path / "run", data=bundled_windows)


def test_schedule_warms_up_then_decays():
    cfg = tiny(steps=100, warmup=10, lr=1e-3, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(99, cfg) < 0.2e-3 and lr_at(100, cfg) == pytest.approx(1e-4)


def test_bad_config_names_the_fix():
    with pytest.raises(LabError, match="1 \\+ 4k"):
        tiny(frames=6).validate()
    with pytest.raises(LabError, match="multiple of 32"):
        tiny(model="ltx-video-tiny", frames=9, crop=48).validate()
    with pytest.raises(LabError, match="trainable"):
        tiny(model="nope").validate()


def test_sigterm_checkpoints_and_stops(tmp_path, bundled_windows):
    import os
    import signal
    import threading
    from lab.teachers.checkpoint import load_state
    threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
    result = train(tiny(steps=10_000), tmp_path / "run", data=bundled_windows)
    assert 0 < result["step"] < 10_000
    assert load_state(tmp_path / "run")["step"] == result["step"]  # resumable from where it stopped


def test_a_time_budget_stops_the_run_and_drives_the_schedule(tmp_path, bundled_windows):
    cfg = tiny(steps=1000, max_minutes=1e-4)  # 6 ms: the first step already spends it
    result = train(cfg, tmp_path / "run", data=bundled_windows)
    assert result["stopped_by"] == "time" and 1 <= result["step"] < 1000
    from lab.teachers.checkpoint import load_state
    assert load_state(tmp_path / "run")["step"] == result["step"]  # checkpointed where it stopped
    # With a budget, the cosine follows whichever runs out first: half the time is half the decay.
    timed = tiny(steps=10**6, warmup=0, lr=1e-3, min_lr_ratio=0.0, max_minutes=10.0)
    assert lr_at(5, timed, wall_s=300.0) == pytest.approx(0.5e-3, rel=1e-3)
    assert lr_at(5, timed, wall_s=600.0) == pytest.approx(0.0, abs=1e-9)


def test_photos_join_the_training_windows(tmp_path, bundled_windows):
    pytest.importorskip("skimage", reason="scikit-image ships the photos")
    from lab.data.mix import MixedWindows
    from lab.data.stills import StillWindows, skimage_photos
    mixed = MixedWindows(bundled_windows, StillWindows(skimage_photos(("coffee",)), short_side=64), 0.5)
    result = train(tiny(steps=2), tmp_path / "run", data=mixed)
    assert result["step"] == 2 and all(v == v for v in result["losses"])


def test_recorded_config_is_read_strictly():
    from lab.errors import LabError
    from lab.teachers.config import TrainConfig
    d = TrainConfig.from_flags(model="mini-wan").to_dict()
    assert TrainConfig.from_dict(d).to_dict() == d
    with pytest.raises(LabError, match="unknown key 'lr_warmup' in the teacher run's config; valid keys: model"):
        TrainConfig.from_dict({**d, "lr_warmup": 5})
    with pytest.raises(LabError, match="the teacher run's config.steps must be int, got str"):
        TrainConfig.from_dict({**d, "steps": "300"})
