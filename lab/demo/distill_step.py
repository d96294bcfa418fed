"""The demo's distillation step: a short run of the lab's three-phase trainer (lab.distill) on the
pruned and swapped student. Everything the demo needs from the trainer goes through
``distill_student``, so the rest of the main job does not depend on how the trainer is configured."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from lab.models import load_decoder
from lab.runs.store import is_run
from lab.training.run_folder import check_run_target

log = logging.getLogger("lab")

#: Share of the step budget per phase (align, joint, finetune), as in configs/distill/mini-wan-flash.toml.
PHASE_SHARES = (("align", 0.2), ("joint", 0.4), ("finetune", 0.4))


def trainer_available() -> tuple[bool, str]:
    """Whether lab.distill provides its ``distill`` entry point, and why not."""
    try:
        from lab.distill import distill  # noqa: F401  # deferred: the check itself (an ImportError is caught)
    except ImportError as exc:
        return False, f"lab.distill has no trainer ({exc})"
    return True, ""


def distill_config(teacher: str, student_folder: Path, clips: list[str], *, val_clips: list[str], steps: int,
                   frames: int, size: tuple[int, int], seed: int, threads: int, device: str = "cpu", batch: int = 1,
                   minutes: float = 0.0, dtype: str = "fp32", first_frame_weight: float = 1.0) -> dict:
    """A lab.distill config for a short run. ``val_clips`` must not include the demo's held-out clip;
    the trainer uses them to size the feature-alignment heads (no val clip: phase 1 is skipped) and
    to pick its 'best' student, but phases switch on training losses and the demo takes the last one.
    ``minutes`` > 0 also bounds the run by training time, shared among the phases as the steps are (a GPU
    session gives minutes: ``steps`` is then a bound the clock should reach first). ``first_frame_weight``: the
    pixel terms' weight of each window's first frame (``distill_student`` gives the teacher's temporal compression,
    so the first latent frame, decoded to one frame, weighs as much as each later one, decoded to t)."""
    per_phase = {name: max(1, round(steps * share)) for name, share in PHASE_SHARES}
    per_phase_minutes = {name: max(minutes, 0.0) * share for name, share in PHASE_SHARES}  # 0: no time limit
    return {
        "teacher": teacher,
        "student": {"folder": str(student_folder)},
        "data": {"clips": list(clips), "val_clips": list(val_clips), "crop": min(size), "frames": frames,
                 "batch": batch, "short_sides": [max(128, min(size))], "val_frames": frames,
                 "val_size": min(size)},
        # Warmup: a twentieth of the steps, at most 100 (a run bounded by the clock gives a step bound it won't reach).
        "optim": {"lr": 1e-3, "betas": [0.9, 0.95], "warmup_steps": max(1, min(steps // 20, 100)), "min_lr_ratio": 0.1},
        # The EMA's decay comes from the run's length in steps (lab.distill.config.EMAConfig). A run bounded by the
        # clock has no known length: a decay sized for its step bound would ship mostly the initial student.
        "ema": {"enabled": minutes <= 0},
        "perceptual": {"required": False},
        "phases": [
            {"name": "align", "losses": {"feature": 1.0}, "max_steps": per_phase["align"],
             "max_minutes": per_phase_minutes["align"],
             "plateau": {"metric": "train/feature", "patience": max(5, per_phase["align"] // 2), "min_delta": 0.01}},
            {"name": "joint", "losses": {"feature": 1.0, "pixel_teacher_l1": 1.0, "pixel_real_l1": 0.5},
             "max_steps": per_phase["joint"], "max_minutes": per_phase_minutes["joint"], "feature_decay": True,
             "plateau": {"metric": "train/pixel_teacher_l1", "patience": max(5, per_phase["joint"] // 2),
                         "min_delta": 0.01}},
            {"name": "finetune", "losses": {"pixel_teacher_l1": 1.0, "pixel_real_l1": 0.5},
             "max_steps": per_phase["finetune"], "max_minutes": per_phase_minutes["finetune"],
             "plateau": {"metric": "train/pixel_teacher_l1", "patience": max(5, per_phase["finetune"] // 2),
                         "min_delta": 0.01}},
        ],
        "eval_every": max(1, steps), "checkpoint_every": 0, "sample_every": 0, "seed": seed,
        "threads": threads, "device": device, "dtype": dtype, "first_frame_weight": first_frame_weight,
    }


def progress_logger(steps: int):
    """A lab.distill callback that logs phase changes on stderr (the trainer shows the steps themselves on its
    progress bar, lab.progress, and writes everything to its run store). ``steps``: the run's step budget."""
    from lab.distill import FunctionCallback  # deferred: lab.distill only once trainer_available() said it imports

    def log_event(event: str, **p) -> None:
        if event == "phase":
            log.info("      distill phase %s from step %d of at most %d (%s)", p["new"], p["step"], steps, p["reason"])

    return FunctionCallback(log_event, events=("phase",))


def distill_student(teacher, student, clips: list[str], *, steps: int, frames: int, size: tuple[int, int],
                    run_dir: Path, val_clips: list[str] = (), seed: int = 0, device: str = "cpu",
                    overwrite: bool = False, teacher_source: str | None = None, teacher_weights: str | None = None,
                    batch: int = 1, minutes: float = 0.0, dtype: str = "fp32"):
    """Distil ``student`` from ``teacher`` on ``clips`` for at most ``steps`` steps (fewer when the
    phases plateau). Returns (student, info). When the trainer is not available the student comes back
    unchanged with ``info['status'] == 'skipped'`` and the reason, so the demo still runs and says so.

    The run goes to ``run_dir`` and the student it starts from to ``<run_dir>-init``. A previous demo's
    run there is replaced (only the run's own files: lab.training.run_folder); a folder holding anything
    else is refused unless ``overwrite``. The trainer loads its own teacher: ``teacher_source`` (a registered
    name or a saved folder; default ``teacher.name``) with ``teacher_weights`` (default: the name's own), which
    must be the weights ``teacher`` has. ``device``, ``batch``, ``minutes`` (a time budget besides ``steps``) and
    ``dtype`` go to the trainer's config (``distill_config``); the trained student comes back on ``student``'s
    device."""
    ok, why = trainer_available()
    if not ok:
        log.warning("distill: skipped: %s; the student is evaluated undistilled", why)
        return student, {"status": "skipped", "reason": why, "steps": 0}
    from lab.distill import distill  # deferred: only once trainer_available() said lab.distill imports

    run_dir = Path(run_dir)
    replace = is_run(run_dir)  # a previous demo's run in the same --out: the demo starts it afresh every time
    check_run_target(run_dir, overwrite or replace)  # before anything is written
    if replace:
        log.info("      replacing the previous distillation run in %s", run_dir)
    init = student.save(run_dir.parent / f"{run_dir.name}-init", overwrite=overwrite)
    config = distill_config(teacher_source or teacher.name, init, clips, val_clips=list(val_clips), steps=steps, frames=frames,
                            size=size, seed=seed, threads=torch.get_num_threads(), device=device, batch=batch,
                            minutes=minutes, dtype=dtype, first_frame_weight=float(teacher.geometry.t))
    if teacher_weights is not None:
        config["teacher_weights"] = teacher_weights
    final = distill(config, run_dir, callbacks=[progress_logger(steps)], overwrite=overwrite or replace)
    trained = load_decoder(final["last"], device=student.device, dtype=student.dtype)
    info = {k: final.get(k) for k in ("step", "phases", "metrics", "store", "last", "warnings")}
    return trained, {"status": "ok", "steps": final["step"], "max_steps": steps, "run": str(run_dir),
                     "config": config, **info}
