"""A small real writer of run stores, for the dashboard tests (and a test that what it writes reads
back). It uses the real RunStore writer the distillation trainer uses, logs every scalar family the
dashboard draws (losses per term and per stage, phases, lr, dynamic weights, perf, validation), records
checkpoints (real safetensors files, the best marked) and renders a real triptych mp4 of the bundled
clip with lab.data.video.side_by_side + write_video.

What it does not have is a model: the "teacher" and "student" panels are the real clip degraded (a
blur, and noise that shrinks as the steps go), and val/psnr, val/ssim are measured on those panels
with lab.eval. The loss curves are a decaying function of the step.

As a script (the browser test's live writer)::

    PYTHONPATH=. python tests/apps/test_dashboard_writer.py RUN --steps 400 --interval 0.5
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

from lab.runs.store import RunReader, RunStore

PHASES = (("reconstruction", 0.0), ("feature-alignment", 0.34), ("adversarial", 0.67))
STAGES = ("mid", "up0", "up1", "up2")


def _clip() -> torch.Tensor:
    from lab.data.samples import bundled_clip
    from lab.data.video import load_clip
    return load_clip(bundled_clip(), frames=9, size=(64, 64))


def _panels(real: torch.Tensor, step: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    teacher = torch.nn.functional.avg_pool3d(real, (1, 3, 3), stride=1, padding=(0, 1, 1),
                                             count_include_pad=False)
    g = torch.Generator().manual_seed(step)
    noise = 0.4 * (1 - step / max(steps, 1)) + 0.03
    student = (teacher + noise * torch.randn(real.shape, generator=g)).clamp(-1, 1)
    return teacher, student


def write_run(folder: str | Path, steps: int = 12, interval: float = 0.0, sample_every: int = 4,
              finish: str | None = "finished", name: str | None = None) -> Path:
    """Write a run of ``steps`` steps to ``folder``; ``finish=None`` leaves it marked running."""
    from lab.data.video import side_by_side, write_video
    from lab.eval.metrics import psnr, ssim
    from safetensors.torch import save_file

    folder = Path(folder)
    config = {"teacher": "mini-wan", "student": "runs/s25", "steps": steps, "batch": 1,
              "phases": [p for p, _ in PHASES], "lr": 1e-3, "writer": "tests/apps/test_dashboard_writer.py"}
    store = RunStore.create(folder, config, kind="distill", name=name)
    real = _clip()
    starts = [int(round(f * steps)) for _, f in PHASES]
    best = -math.inf
    try:
        for step in range(steps):
            phase = max(i for i, s in enumerate(starts) if s <= step)
            if step == starts[phase]:
                store.start_phase(phase, PHASES[phase][0], step, reason="scheduled")
            t0 = time.perf_counter()
            decay = math.exp(-3.0 * step / steps)
            values = {"train/pixel": 0.2 * decay + 0.01, "train/perceptual": 0.5 * decay + 0.05,
                      "weight/pixel": 1.0, "weight/perceptual": 0.1 + 0.4 * step / steps,
                      "lr": 1e-3 * 0.5 * (1 + math.cos(math.pi * step / steps)), "phase": phase}
            if phase >= 1:
                for i, stage in enumerate(STAGES):
                    values[f"train/feat/{stage}"] = (0.3 + 0.1 * i) * decay
                values["weight/feat"] = 0.5
            if phase >= 2:
                values["train/gan_g"] = 0.7 + 0.05 * math.sin(step)
                values["train/gan_d"] = 0.69 - 0.05 * math.sin(step)
                values["weight/gan_g"] = 0.05
            values["train/loss"] = sum(v for k, v in values.items() if k.startswith("train/"))
            values["perf/step_s"] = time.perf_counter() - t0 + interval
            values["perf/samples_per_s"] = 1.0 / values["perf/step_s"]
            values["perf/peak_mem_bytes"] = 64 * 2**20 + 1024 * step
            store.log_scalars(step, values)
            if step % sample_every == 0 or step == steps - 1:
                teacher, student = _panels(real, step, steps)
                clip = write_video(folder / "samples" / f"triptych_{step:06d}.mp4",
                                   side_by_side(real, teacher, student))
                store.add_sample(step, "triptych", clip)
                val = {"val/psnr": psnr(student, real), "val/ssim": ssim(student, real),
                       "val/psnr_vs_teacher": psnr(student, teacher), "val/ssim_vs_teacher": ssim(student, teacher)}
                val["val/retention"] = val["val/psnr"] / psnr(teacher, real)
                store.log_scalars(step, val)  # a later transaction at the same step, as a trainer's eval
                store.log_event(step, "eval", val)
                ckpt = folder / "checkpoints" / f"step_{step:06d}.safetensors"
                save_file({"step": torch.tensor([step])}, str(ckpt))
                is_best = val["val/psnr"] > best
                best = max(best, val["val/psnr"])
                store.add_checkpoint(step, ckpt, "val/psnr", val["val/psnr"], is_best=is_best)
            if interval:
                time.sleep(interval)
        if finish:
            store.finish(finish, final={"steps": steps, "best_val_psnr": best})
    finally:
        store.close()
    return folder


def test_writer_store_reads_back(tmp_path):
    torch.set_num_threads(1)
    folder = write_run(tmp_path / "run", steps=6, sample_every=3)
    with RunReader(folder) as r:
        assert r.status() == "finished"
        assert r.last_step() == 5
        assert [p.name for p in r.phases()] == [p for p, _ in PHASES]
        keys = r.keys()
        assert {"train/loss", "train/feat/mid", "val/psnr", "val/retention", "lr", "weight/pixel",
                "perf/step_s"} <= set(keys)
        samples = r.samples()
        assert [s.step for s in samples] == [0, 3, 5]
        assert all((folder / s.path).stat().st_size > 1000 for s in samples)
        assert sum(c.is_best for c in r.checkpoints()) == 1


if __name__ == "__main__":
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description="write a run store step by step (a stand-in trainer)")
    ap.add_argument("run")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between steps")
    ap.add_argument("--sample-every", type=int, default=10)
    a = ap.parse_args()
    write_run(a.run, steps=a.steps, interval=a.interval, sample_every=a.sample_every)
    sys.exit(0)
