"""--ema: a teacher run keeps a moving average of its weights (the decay ramping up over the first steps), scores,
exports and warm-starts from it, and resumes it exactly."""

import pytest
import torch
from safetensors.torch import load_file

from lab.errors import LabError
from lab.teachers.checkpoint import EMA, MODEL, load_state, shipped_weights
from lab.teachers.config import TrainConfig
from lab.teachers.export import export_run
from lab.teachers.train import train
from lab.teachers.warmstart import load_init_weights
from lab.training.checkpoints import CKPT_WEIGHTS
from teacher_configs import tiny_config


def tiny(**kw) -> TrainConfig:
    # wan_clip off: exports measure latent statistics on the run's clips, and CI has no ../shared
    return tiny_config(**{"steps": 3, "warmup": 1, "ema": 0.9, "wan_clip": False, **kw})


def _weights(run, step: int, prefix: str) -> dict:
    tensors = load_file(run / "checkpoints" / f"step-{step:07d}" / CKPT_WEIGHTS)
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def test_the_average_follows_the_weights_with_a_ramped_decay(tmp_path, bundled_windows):
    run = tmp_path / "run"
    train(tiny(checkpoint_every=1, keep_checkpoints=10), run, data=bundled_windows)
    w = [_weights(run, s, MODEL) for s in range(4)]
    assert torch.equal(_weights(run, 0, EMA)["decoder.conv_in.weight"], w[0]["decoder.conv_in.weight"])
    expected = w[0]
    for n in range(3):  # decay min(0.9, (1 + n) / (10 + n)): 0.1, 0.18, 0.25
        d = min(0.9, (1 + n) / (10 + n))
        expected = {k: d * expected[k] + (1 - d) * w[n + 1][k] for k in expected}
        got = _weights(run, n + 1, EMA)
        for k in ("decoder.conv_in.weight", "encoder.conv_out.bias"):
            assert torch.allclose(got[k], expected[k], atol=1e-6), (n, k)
    assert not torch.equal(_weights(run, 3, EMA)["decoder.conv_in.weight"], w[3]["decoder.conv_in.weight"])
    # what ships is the average: the run's state, an export of it, a warm start from it
    state = load_state(run)
    assert shipped_weights(state) is state["ema"] and state["ema_updates"] == 3
    weights, _ = load_init_weights(run)
    assert torch.equal(weights["decoder.conv_in.weight"], state["ema"]["decoder.conv_in.weight"])
    export_run(run, tmp_path / "export", eval_frames=5)
    shipped = load_file(tmp_path / "export" / "diffusion_pytorch_model.safetensors")
    assert torch.equal(shipped["decoder.conv_in.weight"], state["ema"]["decoder.conv_in.weight"].half())
    assert "exponential moving average of the trained ones, decay 0.9" in (tmp_path / "export" / "README.md").read_text()


def test_an_interrupted_run_resumes_its_average_exactly(tmp_path, bundled_windows):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(tiny(), straight, data=bundled_windows)
    train(tiny(), resumed, data=bundled_windows, stop_at=2)
    train(tiny(), resumed, data=bundled_windows)
    a, b = load_state(straight), load_state(resumed)
    assert a["ema_updates"] == b["ema_updates"] == 3
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])


def test_without_ema_nothing_is_averaged(tmp_path, bundled_windows):
    train(tiny(ema=0.0, steps=1), tmp_path / "run", data=bundled_windows)
    state = load_state(tmp_path / "run")
    assert state["ema"] == {} and shipped_weights(state) is state["model"]
    with pytest.raises(LabError, match="--ema is a decay in"):
        tiny(ema=1.0).validate()
