"""The training loop itself (lab.training.loop), on a toy task (a linear map learning to copy its input): the NaN
policy, checkpoint cadence and content, SIGTERM, and finish / fail / resume bookkeeping in the run store. The
real tasks (distillation, teacher training) are tested in tests/distill and tests/teachers."""

import os
import signal

import pytest
import torch
from torch import nn

from lab.errors import ConfigError
from lab.runs.store import RunReader, RunStoreError
from lab.training.loop import TrainingError, fit
from lab.training.task import Cadence, Objective, Schedule, Step, Task


class Toy(Task):
    kind, label = "toy", "toy"
    weights_prefix, state_keys = "model.", ("step", "optimizer")

    def __init__(self, steps=6, nan_at=None, signal_at=None, fail_at=None, fail_setup=False, want_at=(), **cadence):
        self.steps, self.nan_at, self.signal_at, self.fail_at = steps, nan_at, signal_at, fail_at
        self.fail_setup, self.want_at = fail_setup, set(want_at)
        self.cadence = Cadence(**{"keep_checkpoints": 100, **cadence})
        self.seen = []  # (step, lr) of every step taken

    def config(self):
        return {"steps": self.steps}

    def setup(self, run):
        if self.fail_setup:
            raise ConfigError("setup fails")
        torch.manual_seed(0)
        self.model = nn.Linear(4, 2)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1.0)
        self.gen = torch.Generator().manual_seed(1)
        return self.model

    def schedule(self, step, wall_s):
        return Schedule(step - 1, self.steps, 0.1, 2, 0.1)

    def step(self, step, model):
        x = torch.randn(8, 4, generator=self.gen)
        loss = ((model(x) - x[:, :2]) ** 2).mean()
        if step == self.nan_at:
            loss = loss * float("nan")
        if step == self.fail_at:
            raise RuntimeError("boom")
        if step == self.signal_at:
            os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler's preemption, in the middle of a step
        self.seen.append(step)
        return Step([Objective(loss, self.opt, list(self.model.parameters()), clip=1.0)],
                    {"train/loss": loss.detach()}, samples=8, explain=lambda: ("the toy", "its learning rate"))

    def after_step(self, step, scalars, metrics):
        return step in self.want_at

    def done(self, step, wall_s):
        return step >= self.steps

    def complete(self, step):
        return step >= self.steps

    def steps_left(self, step):
        return self.steps - step

    def state_dict(self):
        return {f"model.{k}": v for k, v in self.model.state_dict().items()}, {"optimizer": self.opt.state_dict()}, {}

    def load_state_dict(self, tensors, state, path):
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items()})
        self.opt.load_state_dict(state["optimizer"])

    def rank_state(self):
        return self.gen.get_state()

    def load_rank_state(self, state):
        self.gen.set_state(state)

    def final(self, step, wall_s, metrics, signalled):
        return {"step": step, "signalled": signalled}


def _losses(run):
    with RunReader(run) as r:
        return r.scalars(["train/loss"])["train/loss"]


def _checkpoints(run):
    with RunReader(run) as r:
        return [c.step for c in r.checkpoints()]


def test_checkpoints_at_the_start_the_cadence_the_task_s_asks_and_the_end(tmp_path):
    final = fit(Toy(steps=7, checkpoint_every=3, want_at=(4,), log_every=2), tmp_path / "run")
    assert final == {"step": 7, "signalled": False}
    assert _checkpoints(tmp_path / "run") == [0, 3, 4, 6, 7]
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        f"step-{s:07d}" for s in (0, 3, 4, 6, 7)]
    assert [s for s, _ in _losses(tmp_path / "run")] == [2, 4, 6, 7]  # every log_every steps, and the last
    with RunReader(tmp_path / "run") as r:
        assert r.status() == "finished" and r.kind() == "toy" and r.meta()["final"]["step"] == 7
        lr = dict(r.scalars(["lr"])["lr"])
    assert lr[2] == pytest.approx(0.1) and lr[7] < lr[4] < lr[2]  # warmup (2 steps), then the cosine


def test_the_newest_checkpoints_are_kept(tmp_path):
    fit(Toy(steps=5, checkpoint_every=1, keep_checkpoints=2), tmp_path / "run")
    assert _checkpoints(tmp_path / "run") == [4, 5]
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step-0000004", "step-0000005"]


def test_a_run_stopped_and_resumed_logs_what_an_uninterrupted_one_does(tmp_path):
    fit(Toy(steps=6), tmp_path / "straight")
    stopped = fit(Toy(steps=6), tmp_path / "run", stop_at=3)
    assert stopped["step"] == 3
    with RunReader(tmp_path / "run") as r:
        assert r.status() == "interrupted" and r.events("interrupted")
    again = Toy(steps=6)
    assert fit(again, tmp_path / "run", resume=True)["step"] == 6
    assert again.seen == [4, 5, 6]
    assert _losses(tmp_path / "run") == _losses(tmp_path / "straight")  # each step once, bit for bit
    with RunReader(tmp_path / "run") as r:
        assert r.status() == "finished" and r.events("resumed")[-1]["checkpoint"].endswith("step-0000003")


def test_a_non_finite_loss_stops_before_its_update_and_names_the_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    task = Toy(steps=10, nan_at=5, checkpoint_every=2)
    with pytest.raises(TrainingError) as err:
        fit(task, run)
    msg = str(err.value)
    assert "the loss became nan at step 5 (the toy)" in msg and "step-0000004" in msg and "its learning rate" in msg
    with RunReader(run) as r:
        assert r.status() == "failed" and "TrainingError" in r.meta()["error"] and r.events("error")
        assert r.last_step() == 4  # the bad step was neither applied nor logged
    assert all(torch.isfinite(p).all() for p in task.model.parameters())


def test_sigterm_finishes_the_step_checkpoints_it_and_stops_as_interrupted(tmp_path):
    run = tmp_path / "run"
    before = signal.getsignal(signal.SIGTERM)
    final = fit(Toy(steps=100, signal_at=3), run)
    assert signal.getsignal(signal.SIGTERM) == before  # the loop's handler is gone with it
    assert final == {"step": 3, "signalled": True}
    assert _checkpoints(run) == [0, 3]
    with RunReader(run) as r:
        assert r.status() == "interrupted" and r.last_step() == 3
        assert r.events("interrupted")[-1]["last_checkpoint"].endswith("step-0000003")
    assert fit(Toy(steps=4), run, resume=True)["step"] == 4


def test_a_failure_is_recorded_and_a_failed_resume_leaves_the_status(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="boom"):
        fit(Toy(steps=5, fail_at=2), run)
    with RunReader(run) as r:
        assert r.status() == "failed" and "RuntimeError: boom" in r.meta()["error"]
    fit(Toy(steps=5), run, resume=True)
    with pytest.raises(ConfigError, match="setup fails"):
        fit(Toy(steps=5, fail_setup=True), run, resume=True)
    with RunReader(run) as r:
        assert r.status() == "finished" and "setup fails" in r.events("resume_failed")[-1]["message"]


def test_a_run_is_resumed_only_as_its_own_kind_and_never_started_over_an_existing_one(tmp_path):
    fit(Toy(steps=1), tmp_path / "run")
    with pytest.raises(RunStoreError, match="already holds a run"):
        fit(Toy(steps=1), tmp_path / "run")

    class Other(Toy):
        kind = "other"
    with pytest.raises(RunStoreError, match="holds a toy run, not a other run"):
        fit(Other(steps=2), tmp_path / "run", resume=True)


class ConvToy(Toy):
    """The toy with a 3D conv in its step, of a causal step's shape (few frames: ATen's rule gives it to
    slow_conv3d), profiled by ``aten_ops``."""

    def __init__(self, aten_ops, **kw):
        super().__init__(**kw)
        self.aten_ops = aten_ops

    def setup(self, run):
        model = super().setup(run)
        self.conv, self.ops = nn.Conv3d(8, 8, 3, padding=(0, 1, 1)), set()
        self.start = self.conv.weight.detach().clone()
        self.opt.add_param_group({"params": list(self.conv.parameters())})
        return model

    def step(self, step, model):
        out = super().step(step, model)
        x = torch.randn(1, 8, 4, 8, 8, generator=self.gen)
        extra = []
        self.ops |= self.aten_ops(lambda: extra.append(self.conv(x).square().mean()))
        out.objectives[0].loss = out.objectives[0].loss + extra[0]
        return out


def test_the_cpu_steps_3d_convs_run_onednn_with_atens_gradients(tmp_path, aten_ops):
    task = ConvToy(aten_ops, steps=2)
    fit(task, tmp_path / "run")
    assert "aten::mkldnn_convolution" in task.ops and "aten::slow_conv3d_forward" not in task.ops
    assert not torch.equal(task.conv.weight, task.start)  # gradients flowed through the oneDNN op
    # outside the loop, the same conv is ATen's choice: slow_conv3d (what the loop saves)
    assert "aten::slow_conv3d_forward" in aten_ops(lambda: task.conv(torch.randn(1, 8, 4, 8, 8)))
