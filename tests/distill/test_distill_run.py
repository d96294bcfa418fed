"""End to end on the tiny test teacher: one run through the CLI (--json), then the store, the phases,
the checkpoints, best/ and samples it leaves; resume after an interruption logs exactly the rows of
an uninterrupted run; NaN losses stop the run with a usable checkpoint."""

import contextlib
import io
import json
import math
from pathlib import Path

import pytest
import torch

from lab.distill import Callback, distill, load_config, register_loss
from lab.distill import TrainingError
from lab.models import load_decoder
from lab.runs.store import RunReader

TINY = Path(__file__).resolve().parents[2] / "configs" / "distill" / "tiny.toml"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, sample_clips):
    out = tmp_path_factory.mktemp("distill") / "run"
    from lab.cli import main
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["distill", "--config", str(TINY), "--out", str(out), "--json"])
    assert rc == 0
    return out, json.loads(buf.getvalue())


def _train_rows(out):
    with RunReader(out) as r:
        return {k: v for k, v in r.scalars().items() if not k.startswith("perf/")}


def test_cli_json_names_the_store_checkpoints_and_metrics(tiny_run):
    out, result = tiny_run
    assert result["store"] == str(out / "store.sqlite") and Path(result["checkpoint"]).is_dir()
    assert result["step"] == 6 and set(result["initial"]) == {"val/psnr", "val/retention"}
    # Each phase says why it started and why it ended (the next one's start, or the last phase's own end).
    ph = result["phases"]
    assert [p["started_because"] for p in ph][0] == "start"
    assert [p["ended_because"] for p in ph[:-1]] == [p["started_because"] for p in ph[1:]]
    assert ph[-1]["ended_because"] and ph[0]["ended_because"].startswith("max_steps")
    for k in ("val/psnr", "val/ssim", "val/psnr_vs_teacher", "val/retention", "val/psnr_drop_db"):
        assert math.isfinite(result["metrics"][k])
    m = result["metrics"]  # retention comes with its drop in dB
    assert m["val/psnr_drop_db"] == pytest.approx(m["val/teacher_psnr"] - m["val/psnr"])


def test_store_has_all_three_phases_with_reasons_and_scalars(tiny_run):
    out, _ = tiny_run
    with RunReader(out) as r:
        assert r.status() == "finished"
        phases = r.phases()
        assert [(p.name, p.start_step, p.end_step) for p in phases] == [("align", 0, 2), ("joint", 2, 4),
                                                                         ("finetune", 4, 6)]
        assert phases[0].reason == "start" and phases[1].reason.startswith("max_steps")
        s = r.scalars()
        assert [st for st, _ in s["phase"]] == list(range(1, 7))
        assert {v for _, v in s["phase"]} == {0, 1, 2}
        assert [st for st, _ in s["train/feature"]] == [1, 2, 3, 4]          # phases 1-2 only
        assert [st for st, _ in s["train/pixel_teacher_l1"]] == [3, 4, 5, 6]
        assert [st for st, _ in s["train/gan_d"]] == [5, 6]                   # GAN on from step 5
        assert "train/feat/up3" in s and "weight/feature" in s and "lr" in s
        # the phase-2 feature weight decays from its configured value
        w = dict(s["weight/feature"])
        assert w[1] == w[2] == w[3] == 1.0 and w[4] <= 1.0
        assert [st for st, _ in s["val/psnr"]] == [0, 2, 4, 6]
        assert r.samples() and r.samples()[0].name == "triptych"
        assert all(r.resolve(x.path).stat().st_size > 0 for x in r.samples())
        warn = r.events("warning")
        assert warn and "perceptual loss disabled" in warn[0]["message"]   # LPIPS weights are not here
        ck = r.checkpoints()   # the last two and the best are kept, and the store lists exactly those
        assert 2 <= len(ck) <= 3 and all(r.resolve(c.path).is_dir() for c in ck)
        assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"step-{c.step:07d}" for c in ck]
        assert r.best_checkpoint() is not None


def test_best_and_last_load_as_decoders_and_decode_the_right_shape(tiny_run):
    out, _ = tiny_run
    teacher = load_decoder("wan2.1-tiny", weights="random")
    z = torch.randn(1, 16, 3, 4, 4)
    for folder in ("best", "last"):
        student = load_decoder(str(out / folder))
        assert student.family == "student"
        assert student.decode(z).shape == teacher.decode(z).shape == (1, 3, 9, 32, 32)


class StopAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_step(self, state):
        if state.step == self.step:
            raise KeyboardInterrupt("stop for the test")


def test_interrupted_run_resumes_to_the_same_rows(tiny_run, tmp_path):
    straight, _ = tiny_run
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        distill(TINY, out, callbacks=[StopAt(5)])     # last checkpoint: step 4 (mid-run, phase 'finetune')
    with RunReader(out) as r:
        assert r.status() == "interrupted" and r.last_step() == 5
    events = []
    final = distill(None, out, resume=True, callbacks=[lambda event, **kw: events.append(event)])
    assert final["step"] == 6 and "end" in events and "step" in events
    a, b = _train_rows(straight), _train_rows(out)
    assert set(a) == set(b)
    for key in a:
        assert [s for s, _ in a[key]] == [s for s, _ in b[key]], key       # no lost or duplicated rows
        assert [v for _, v in a[key]] == [v for _, v in b[key]], key       # identical, bit for bit
    with RunReader(out) as r:
        assert r.status() == "finished" and r.events("resumed")
        assert [p.name for p in r.phases()] == ["align", "joint", "finetune"]


@pytest.mark.parametrize("lost", [("init", "checkpoints"), ("checkpoints",)], ids=["in-setup", "after-student"])
def test_a_run_stopped_before_its_first_checkpoint_resumes_from_step_0(tiny_run, tmp_path, lost):
    straight, _ = tiny_run
    out = tmp_path / "early"
    with pytest.raises(KeyboardInterrupt):
        distill(TINY, out, callbacks=[StopAt(1)])
    import shutil
    for folder in lost:                              # as if it had stopped before saving its student (in setup),
        shutil.rmtree(out / folder)                  # or after it but before its first checkpoint: the restart
    (out / "checkpoints").mkdir()                    # draws the heads' and the discriminator's weights anew
    final = distill(None, out, resume=True)
    assert final["step"] == 6
    a, b = _train_rows(straight), _train_rows(out)
    assert set(a) == set(b)
    for key in a:
        assert [s for s, _ in a[key]] == [s for s, _ in b[key]], key       # the stopped attempt's rows are gone
        assert [v for _, v in a[key]] == [v for _, v in b[key]], key       # identical, bit for bit
    with RunReader(out) as r:
        assert r.status() == "finished" and [p.name for p in r.phases()] == ["align", "joint", "finetune"]
        assert any("starting it from step 0" in e["message"] for e in r.events("warning"))


def test_nan_loss_stops_with_a_clear_error_and_a_usable_checkpoint(tmp_path, sample_clips):
    calls = {"n": 0}

    @register_loss("test_nan_after_3")
    def nan_after_3(b):
        calls["n"] += 1
        return b.student.mean() * (float("nan") if calls["n"] > 3 else 0.0)

    cfg = load_config(TINY)
    cfg.phases = cfg.phases[1:2]
    cfg.phases[0].losses = {"pixel_teacher_l1": 1.0, "test_nan_after_3": 1.0}
    cfg.phases[0].max_steps = 10
    cfg.phases[0].feature_decay = False
    cfg.checkpoint_every = 2
    out = tmp_path / "nan"
    with pytest.raises(TrainingError) as err:
        distill(cfg, out)
    msg = str(err.value)
    assert "step 4" in msg and "test_nan_after_3" in msg and "step-0000002" in msg
    with RunReader(out) as r:
        assert r.status() == "failed" and "TrainingError" in r.meta()["error"]
    assert load_decoder(str(out / "last")).decode(torch.randn(1, 16, 2, 4, 4)).isfinite().all()


def _distill_logging_phases(cfg, out):
    """Run ``cfg`` into ``out``; (its final record, each phase it entered as (name, why))."""
    phases = []
    final = distill(cfg, out, callbacks=[
        lambda event, **kw: phases.append((kw["new"], kw["reason"])) if event == "phase" else None])
    return final, phases


def test_phase_without_feature_taps_is_skipped_with_the_reason(tmp_path, sample_clips):
    cfg = load_config(TINY)
    cfg.feature_stages = []                       # as for a student with no comparable stages
    cfg.phases = cfg.phases[:2]
    for ph in cfg.phases:
        ph.max_steps = 1
    cfg.eval_every, cfg.checkpoint_every, cfg.sample_every = 100, 0, 0
    final, phases = _distill_logging_phases(cfg, tmp_path / "skip")
    assert final["step"] == 1
    assert phases == [("align", "start"), ("joint", "no feature taps")]
    with RunReader(tmp_path / "skip") as r:
        assert [(p.name, p.start_step, p.end_step, p.reason) for p in r.phases()] == [
            ("align", 0, 0, "start"), ("joint", 0, 1, "no feature taps")]
        assert "train/feature" not in r.keys() and "weight/feature" not in r.keys()


def test_a_short_run_with_a_long_ema_says_so(tmp_path, sample_clips):
    cfg = load_config(TINY)
    assert cfg.ema.decay ** 6 < 1e-4  # left out in tiny.toml: chosen from the run's 6 steps
    cfg.ema.decay = 0.999  # the method's decay, for a run of 2 steps: the EMA would stay the initial student
    cfg.phases = cfg.phases[1:2]
    cfg.phases[0].max_steps = 2
    cfg.eval_every, cfg.checkpoint_every, cfg.sample_every = 100, 0, 0
    final = distill(cfg, tmp_path / "ema")
    note = next(w for w in final["warnings"] if w.startswith("ema.decay 0.999"))
    assert "at most 2" in note and "Leave ema.decay out" in note
    with RunReader(tmp_path / "ema") as r:
        assert note in [e["message"] for e in r.events("warning")]


def test_a_phase_with_max_minutes_ends_on_the_clock_and_its_cosine_follows_it(tmp_path, sample_clips):
    from lab.distill.trainer import DistillTask
    from lab.training.schedule import lr_at
    cfg = load_config(TINY)
    cfg.phases = cfg.phases[:2]
    for ph in cfg.phases:
        ph.max_steps, ph.max_minutes = 1000, 1e-9  # spent once a phase's first step is: its second is its last
    cfg.eval_every, cfg.checkpoint_every, cfg.sample_every = 100, 0, 0
    final, phases = _distill_logging_phases(cfg, tmp_path / "timed")
    assert final["step"] == 4
    assert phases == [("align", "start"), ("joint", "max_minutes (1e-09)")]
    assert final["phases"][-1]["ended_because"] == "max_minutes (1e-09)"
    # The LR: a phase 90 s into its 3 minutes is half-way down its cosine, whatever its step count says.
    task = object.__new__(DistillTask)  # only what schedule() reads
    cfg.phases[0].max_minutes, cfg.optim.warmup_steps = 3.0, 0
    task.cfg, task.phase_idx, task.phase_step, task.phase_wall0 = cfg, 0, 10, 40.0
    lr = lr_at(*task.schedule(step=11, wall_s=40.0 + 90))
    base, floor = cfg.optim.lr, cfg.optim.lr * cfg.optim.min_lr_ratio
    assert lr == pytest.approx(floor + (base - floor) * 0.5)
    from lab.errors import ConfigError
    with pytest.raises(ConfigError, match="max_minutes must be a number of minutes >= 0"):
        cfg.phases[0].max_minutes = -1
        cfg.validate()


def test_tensorboard_logger_needs_tensorboard_or_says_so(tmp_path):
    from lab.distill import StepState, TensorBoardLogger
    from lab.errors import ConfigError
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pip install tensorboard"):
            TensorBoardLogger(str(tmp_path / "tb"))
        return
    tb = TensorBoardLogger(str(tmp_path / "tb"))
    tb.on_step(StepState(1, 0, "align", {"train/loss": 1.0}))
    tb.on_end({})
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))



def test_adaptive_gan_factor_is_the_gradient_norm_ratio_at_the_output_layer():
    from lab.distill.losses import adaptive_gan_factor
    layer = torch.nn.Linear(3, 2)
    x = torch.randn(5, 3)
    y = layer(x)
    rec, gan = (y ** 2).mean(), 7.0 * y.sum()
    g_rec = torch.autograd.grad(rec, layer.weight, retain_graph=True)[0]
    g_gan = torch.autograd.grad(gan, layer.weight, retain_graph=True)[0]
    expected = float(g_rec.norm()) / (float(g_gan.norm()) + 1e-4)
    assert adaptive_gan_factor(rec, gan, layer.weight) == pytest.approx(expected)
    assert adaptive_gan_factor(rec, gan, layer.weight, max_factor=1e-6) == 1e-6       # clamped
    assert adaptive_gan_factor(rec, torch.tensor(1.0), layer.weight) == 1.0           # GAN term not connected
    (rec + gan).backward()  # the graph survives for the real backward pass
    assert layer.weight.grad is not None


def test_adaptive_gan_weight_is_used_and_logged_in_a_run(tmp_path, sample_clips):
    cfg = load_config(TINY)
    cfg.gan.adaptive = True
    seen = []

    class Probe(Callback):
        def on_step(self, state):
            seen.append(dict(state.scalars))

    distill(cfg, tmp_path / "run", callbacks=[Probe()])
    gan_steps = [s for s in seen if "train/gan" in s]
    assert gan_steps, "no step ran the GAN term"
    base = next(ph.losses["gan"] for ph in cfg.phases if "gan" in ph.losses)
    for s in gan_steps:
        factor = s["weight/gan_adaptive"]
        assert 0 < factor <= cfg.gan.adaptive_max and math.isfinite(factor)
        assert s["weight/gan"] == pytest.approx(base * factor)     # the effective weight is what is logged


@pytest.mark.parametrize("norm_stats", ["train", "frozen"])
def test_frozen_norm_stats_keep_a_batch_norm_student_s_statistics(tmp_path, sample_clips, norm_stats):
    """student.norm_stats = 'frozen': a fine-tune at batch 1 normalises with the shipped running statistics and
    leaves them as they were (its affine weights still learn); 'train' re-estimates them from each step's crop."""
    from lab.distill.config import StudentConfig
    from lab.models.lightweight.effvit import EfficientViTVideoDecoder
    from lab.models.lightweight.variants import build
    # A tiny EfficientViT (BatchNorm) decoder of the wan2.1-tiny teacher's latents (16 channels, 4x time, 8x space)
    config = dict(latent_channels=16, block_out_channels=(8, 8, 16, 16), layers_per_block=(0, 1, 1, 0), norm_type="batch_norm",
                  act_fn="relu", temporal_compression=4, teacher="wan2.1-tiny")
    build(EfficientViTVideoDecoder, config, "effvit-tiny").save(tmp_path / "student")
    cfg = load_config(TINY)
    cfg.student = StudentConfig(folder=str(tmp_path / "student"), norm_stats=norm_stats)
    cfg.feature_stages, cfg.phases = [], cfg.phases[2:]  # finetune only: pixel terms
    cfg.phases[0].max_steps = 2
    cfg.eval_every, cfg.checkpoint_every, cfg.sample_every = 1, 0, 0  # validation between steps
    cfg.ema.enabled = False
    distill(cfg, tmp_path / "run")
    norms = lambda folder: [m for m in load_decoder(str(folder)).model.modules()  # noqa: E731
                            if isinstance(m, torch.nn.BatchNorm2d)]
    before, after = norms(tmp_path / "student"), norms(tmp_path / "run" / "last")
    assert before and len(before) == len(after)
    kept = all(torch.equal(a.running_mean, b.running_mean) and torch.equal(a.running_var, b.running_var)
               for a, b in zip(before, after))
    assert kept == (norm_stats == "frozen")
    assert any(not torch.equal(a.weight, b.weight) for a, b in zip(before, after))  # the affine weights learned



def test_the_first_frame_weight_weighs_each_window_s_first_frame_in_the_pixel_terms():
    from lab.distill.losses import LOSSES, LossInputs
    from lab.distill.trainer import first_frame_weights
    g = torch.Generator().manual_seed(0)
    student, teacher, real = (torch.randn(2, 3, 5, 4, 4, generator=g) for _ in range(3))
    assert first_frame_weights(5, 1.0, "cpu") is None  # the default: torch's own losses, unchanged
    w = first_frame_weights(5, 4.0, "cpu")
    assert w.tolist() == [4.0, 1.0, 1.0, 1.0, 1.0]
    plain = LossInputs(student, teacher, real)
    for name, target, err in [("pixel_teacher_l1", teacher, lambda d: d.abs()), ("pixel_real_mse", real, torch.square)]:
        assert torch.equal(LOSSES[name](plain), (torch.nn.functional.l1_loss if "l1" in name else
                                                 torch.nn.functional.mse_loss)(student, target))
        per_frame = [float(err(student[:, :, t] - target[:, :, t]).mean()) for t in range(5)]
        weighted = LOSSES[name](LossInputs(student, teacher, real, frame_weights=w))
        assert float(weighted) == pytest.approx((4 * per_frame[0] + sum(per_frame[1:])) / 8, rel=1e-6)
        even = LOSSES[name](LossInputs(student, teacher, real, frame_weights=torch.ones(5)))
        assert float(even) == pytest.approx(float(LOSSES[name](plain)), rel=1e-6)
