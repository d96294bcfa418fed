"""The distillation loop (``Trainer``; ``lab.distill.run.distill`` starts it in a process). Its helpers
each do one job: ``distributed`` (ranks and collectives), ``student`` (what trains), ``data`` (windows
and latents), ``losses`` and ``feature_weight``, ``evaluation``, ``checkpointing`` (what a checkpoint holds)
and ``summary`` (the run's final record). What every training run of the lab shares (checkpoint folders,
the LR and plateau schedule, signals, run folders) is in ``lab.training``.

One plain loop (read ``Trainer.fit``): sample real windows -> the frozen teacher encodes and decodes
them (its stage outputs recorded by hooks) -> the student decodes the same latents -> the phase's
weighted loss terms -> AdamW step (+ EMA, + discriminator step) -> log, evaluate, maybe switch phase,
maybe checkpoint. Phases switch on a plateau of a smoothed metric or at max_steps, the reason is
recorded in the run store. The student may be any VideoDecoder with ``decode_with_grad``; a phase made
only of feature terms is skipped (reason 'no feature taps') when the student has no comparable stages.

Durability: one process writes a run folder at a time (``lab.runs.lock``; a second is refused with the
first one's pid, a killed one's lock is gone with it). Checkpoints are folders written under a temporary
name and renamed into place (safetensors weights + a weights_only-loadable state file); ``best/`` and
``last/`` are swapped in whole (``VideoDecoder.save``). ``resume=True`` reloads the newest checkpoint that
can be read (an unreadable one is set aside as ``unreadable-step-*`` and the one before it is used),
forgets the store rows and step events logged after it and continues with the same data order, optimizer,
EMA and schedule state. The losses it logs are then bit-identical to an uninterrupted run's on the same
machine and threads: loss terms are summed in name order, not in the config's key order (a resumed run
reads its config back from config.json, whose keys are sorted). SIGTERM / Ctrl-C in the loop finish the
step, checkpoint it and mark the run ``interrupted`` (``lab.training.signals``); any other exception marks it ``failed`` with the error text, except a resume that fails
before it changed anything, which leaves the run's status as it was. See ``lab.training.run_folder`` for
which folders a run may be written into and what ``overwrite`` replaces.

Scale-out: under ``torchrun`` (WORLD_SIZE > 1) the student is wrapped in DistributedDataParallel
(gloo on CPU, nccl on CUDA), each rank draws its own windows (seed + rank), logged losses are
averaged over ranks so every rank takes the same phase decisions, and only rank 0 writes the store,
checkpoints and folders.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from lab.distill.checkpointing import BEST_METRIC, Checkpointing, checkpoint_folder
from lab.distill.config import DistillConfig, ema_warning
from lab.distill.data import load_val_clips, training_batches
from lab.distill.distributed import DistEnv
from lab.distill.evaluation import validation_metrics, write_triptych
from lab.distill.features import FeatureAligner, StageTaps, comparable_stages
from lab.distill.hooks import Callback, RunStoreLogger, StepState, as_callback
from lab.distill.losses import (LOSSES, NEEDS, PIXEL_TERMS, LossInputs, PatchGAN3D, adaptive_gan_factor,
                               discriminator_hinge, output_layer_weight)
from lab.distill.feature_weight import FeatureWeightDecay
from lab.distill.student import StudentModule, build_student, stage_widths
from lab.distill.summary import phase_history
from lab.errors import ConfigError, LabError, WeightsNotFoundError
from lab.models import load_decoder
from lab.progress import Progress
from lab.eval.backbones import load_lpips
from lab.runs.store import RunStore
from lab.training.config import changed_keys
from lab.training.schedule import PlateauDetector, lr_at
from lab.training.signals import StopOnSignal

log = logging.getLogger("lab")


class TrainingError(LabError):
    """Training cannot go on (a NaN/inf loss); the message names the last usable checkpoint."""


# ----- the trainer ---------------------------------------------------------------------------------
class Trainer(Checkpointing):
    def __init__(self, cfg: DistillConfig, out: Path, resume: bool, callbacks, env: DistEnv):
        self.cfg, self.out, self.env = cfg, Path(out), env
        self.callbacks: list[Callback] = [as_callback(c) for c in callbacks]
        self.device = env.device
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if cfg.dtype == "bf16"
                         and self.device.type == "cuda" else nullcontext())
        self.store: RunStore | None = None
        self.ckpts = checkpoint_folder(self.out)
        self.step = 0
        if env.main:
            if resume:
                self.store = RunStore.resume(self.out)
                changed = changed_keys(self.store.config(), json.loads(json.dumps(cfg.to_dict())))
                if changed:  # e.g. longer phases for a resumed run; recorded so the history stays honest
                    self.store.log_event(self.store.last_step() or 0, "config_changed", {"keys": changed})
            else:
                self.store = RunStore.create(self.out, cfg.to_dict())
        self.warnings: list[str] = []
        try:
            ema_note = ema_warning(cfg)
            if ema_note:
                self._warn(ema_note)
            self._setup(resume)
        except BaseException as exc:
            if resume and self.store:
                self._resume_failed(exc)
            else:
                self._fail(exc)
            raise

    # -- setup ------------------------------------------------------------------------------------
    def _setup(self, resume: bool):
        cfg = self.cfg
        torch.manual_seed(cfg.seed + self.env.rank)
        self.teacher = load_decoder(cfg.teacher, weights=cfg.teacher_weights, device=self.device).eval()
        self.teacher.requires_grad_(False)
        init = self.out / "init"
        # A run resumed before it saved its student (it stopped during setup) builds it now: the same
        # config and seed give the same student.
        if self.env.main and (not resume or not (init / "lab_decoder.json").exists()):
            build_student(cfg, self.teacher).save(init, overwrite=True)  # the run's own folder
        self.env.barrier()
        if not (init / "lab_decoder.json").exists():
            raise ConfigError(f"cannot resume {self.out}: its initial student folder {init} is missing.")
        self.student = load_decoder(str(init), device=self.device).train()
        if not hasattr(self.student, "decode_with_grad"):
            raise ConfigError(f"the student {type(self.student).__name__} has no decode_with_grad; it cannot train.")

        self.val = load_val_clips(self.teacher, cfg.data.val_clips, cfg.data.val_frames, cfg.data.val_size)
        self.data = training_batches(self.teacher, cfg.data, teacher_name=cfg.teacher, seed=cfg.seed,
                                     rank=self.env.rank, world=self.env.world, autocast=self.autocast)
        # The EMA copy is made before any hook is registered on the student (deepcopy would copy hooks).
        self.ema = copy.deepcopy(self.student).eval().requires_grad_(False) if cfg.ema.enabled else None
        # Stage widths are read off one forward pass; any latents of the right geometry will do when
        # there is no validation clip (widths depend on the architecture, not on the values).
        geo = self.teacher.geometry
        probe = (self.val[0].latents if self.val else
                 torch.zeros(1, geo.channels, 2, 4, 4, device=self.device, dtype=self.teacher.dtype))
        stages = comparable_stages(self.teacher, self.student, cfg.feature_stages)
        aligner = FeatureAligner(self.student, stages, stage_widths(self.student, stages, probe),
                                 stage_widths(self.teacher, stages, probe)).to(self.device)
        self.model = StudentModule(self.student, aligner)
        self.teacher_taps = StageTaps(self.teacher, stages) if stages else None
        self.ddp = self.env.wrap(self.model)
        self.available = {"features": bool(stages), "lpips": False, "discriminator": False}

        used = {name for ph in cfg.phases for name, w in ph.losses.items() if w > 0}
        self.lpips = None
        if used & {"perceptual", "perceptual_teacher"}:
            try:
                self.lpips = load_lpips(self.device)
                self.available["lpips"] = True
            except WeightsNotFoundError as exc:
                if cfg.perceptual.required:
                    raise ConfigError(f"perceptual.required is set but {exc}") from None
                self._warn(f"perceptual loss disabled: {exc} (set perceptual.required = true to make this an "
                           f"error)")
        self.disc = self.opt_d = None
        self._out_weight = None  # the student's output-layer weight, for gan.adaptive (found on first use)
        if "gan" in used:
            self.disc = PatchGAN3D(cfg.gan.channels).to(self.device)
            self.opt_d = torch.optim.AdamW(self.disc.parameters(), lr=cfg.gan.lr, betas=tuple(cfg.optim.betas))
            self.available["discriminator"] = True

        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
                                     weight_decay=cfg.optim.weight_decay)
        self.gen = torch.Generator().manual_seed(cfg.seed * 1000 + self.env.rank)

        # schedule state
        self.step, self.phase_idx, self.phase_step = 0, 0, 0
        self.best, self.best_step = -math.inf, None
        self.last_ckpt_wall = time.time()
        self._new_phase_state()
        self.teacher_psnr = None
        self.resumed_from = None
        if resume:
            self._load_latest_checkpoint()

    def _warn(self, text: str):
        log.warning("%s", text)
        self.warnings.append(text)
        # Once per run: a resumed run meets the same conditions again (e.g. no LPIPS weights) in its setup.
        if self.store and text not in {e.get("message") for e in self.store.events("warning")}:
            self.store.log_event(self.step, "warning", {"message": text})

    def _new_phase_state(self):
        ph = self.cfg.phases[self.phase_idx]
        p = ph.plateau
        self.plateau = PlateauDetector(p.patience, p.min_delta, p.mode, p.relative, p.smoothing)
        self.decay = FeatureWeightDecay(ph.losses.get("feature", 0.0)) if ph.feature_decay else None

    def _active_losses(self, ph) -> dict[str, float]:
        return {n: w for n, w in ph.losses.items() if w > 0 and self.available.get(NEEDS.get(n, ""), True)}

    def _phase_skip_reason(self, ph) -> str | None:
        if self._active_losses(ph):
            return None
        missing = sorted({NEEDS[n] for n, w in ph.losses.items() if w > 0 and n in NEEDS})
        return "no feature taps" if missing == ["features"] else f"no usable loss terms (missing {missing})"

    # -- events -----------------------------------------------------------------------------------
    def _emit(self, event: str, *args):
        for cb in self.callbacks:
            getattr(cb, event)(*args)

    def _phase_index(self, name: str) -> int:
        return [p.name for p in self.cfg.phases].index(name)

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self) -> dict:
        cfg = self.cfg
        if self.env.main:
            self.callbacks.insert(0, RunStoreLogger(self.store, self._phase_index))
        else:
            self.callbacks = [c for c in self.callbacks if getattr(c, "all_ranks", False)]
        # Rank 0 shows progress; the total is an upper bound (a phase may end early on a plateau).
        self.progress = Progress("distill", self._steps_left(), unit="step") if self.env.main else None
        try:
            # SIGTERM / Ctrl-C in the loop: finish the step, checkpoint it, then stop as interrupted, so a
            # preempted run loses no step (before the loop, lab.distill.run makes them interrupt at once).
            with StopOnSignal() as stop:
                if self.resumed_from is None:
                    self._emit("on_phase", 0, None, cfg.phases[0].name, "start")
                    self._evaluate()             # step 0: the undistilled student
                    self._skip_unusable_phases()
                    self._checkpoint()           # so even the undistilled student can be resumed / be 'best'
                while self.phase_idx < len(cfg.phases):
                    ph = cfg.phases[self.phase_idx]
                    scalars = self._train_step(ph)
                    self._emit("on_step", StepState(self.step, self.phase_idx, ph.name, scalars))
                    if self.progress is not None:
                        self.progress.update(note=f"{ph.name}, loss {scalars['train/loss']:.4g}")
                    metrics = None
                    if self.step % cfg.eval_every == 0:
                        metrics = self._evaluate()
                    reason = self._switch_reason(ph, scalars, metrics)
                    improved = metrics is not None and self.best_step == self.step
                    if reason:
                        self._next_phase(reason)
                    due = cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0
                    timed = bool(cfg.checkpoint_minutes) and time.time() - self.last_ckpt_wall > 60 * cfg.checkpoint_minutes
                    # Rank 0's clock and signal decide, so all ranks checkpoint and stop at the same step.
                    timed, stopping = self.env.broadcast((timed, stop.requested))
                    if due or timed or reason or improved or stopping:
                        self._checkpoint()
                    if stopping:
                        raise KeyboardInterrupt(f"stopped by a signal after checkpointing step {self.step}")
            final = self._finish()
        except KeyboardInterrupt:
            if self.store:
                self.store.log_event(self.step, "interrupted", {"last_checkpoint": self.ckpts.latest()})
                self.store.finish("interrupted")
            raise
        except BaseException as exc:
            self._fail(exc)
            raise
        finally:
            if self.progress is not None:
                self.progress.close()
        return final

    def _steps_left(self) -> int:
        """Steps the run can still take: the rest of the current phase and every later phase in full."""
        phases = self.cfg.phases[self.phase_idx:]
        return sum(ph.max_steps for ph in phases) - (self.phase_step if phases else 0)

    def _train_step(self, ph) -> dict:
        cfg = self.cfg
        self.step += 1
        t0 = time.perf_counter()
        lr = lr_at(self.phase_step, ph.max_steps, ph.lr or cfg.optim.lr, cfg.optim.warmup_steps,
                   cfg.optim.min_lr_ratio)
        for g in self.opt.param_groups:
            g["lr"] = lr
        batch, frames, crop = ph.batch or cfg.data.batch, ph.frames or cfg.data.frames, ph.crop or cfg.data.crop
        real, z = self.data.sample(batch, frames, crop, self.gen, step=self.step)  # step: streamed/cached data
        # Terms are computed and summed in name order, not in the config's key order: a resumed run reads
        # its config back from config.json (keys sorted), and a different summation order alone makes the
        # losses of a resumed run drift (~1e-4 after a few steps) from those of an uninterrupted one.
        weights = dict(sorted(self._active_losses(ph).items()))
        need_feats = "feature" in weights
        if self.teacher_taps is not None:
            self.teacher_taps.collect()
        with torch.no_grad(), self.autocast:
            teacher_video = self.teacher.decode(z)
        teacher_feats = self.teacher_taps.collect() if self.teacher_taps is not None else None
        if self.decay is not None and "feature" in weights:
            weights["feature"] = self.decay.weight
        gan_on = "gan" in weights and self.step >= cfg.gan.start_step
        if not gan_on:
            weights.pop("gan", None)
        with self.autocast:
            video, pairs = self.ddp(z, teacher_feats if need_feats else None)
            inputs = LossInputs(video.float(), teacher_video.float(), real.float(),
                                {s: (a.float(), b.float()) for s, (a, b) in pairs.items()}, self.lpips, self.disc)
            terms, parts = {}, {}
            for name in weights:
                value = LOSSES[name](inputs)
                if isinstance(value, tuple):
                    value, sub = value
                    parts.update(sub)
                terms[name] = value
            if gan_on and cfg.gan.adaptive:
                # weight/gan is then the effective weight, weight/gan_adaptive the factor (both logged)
                weights["gan_adaptive"] = self._adaptive_gan_factor(terms, weights, z)
                weights["gan"] = weights["gan"] * weights["gan_adaptive"]
            total = sum(weights[n] * terms[n] for n in terms)
            # Zero-weighted outputs keep every parameter in DDP's graph (phase 1 ignores the pixels).
            total = total + 0.0 * video.float().mean()
        values = {n: float(v.detach()) for n, v in terms.items()}
        finite = math.isfinite(float(total.detach()))
        if self.env.world > 1:  # every rank must stop together, or the others hang in the gradient all-reduce
            finite = self.env.mean({"finite": float(finite)})["finite"] == 1.0
        if not finite:
            bad = [n for n, v in values.items() if not math.isfinite(v)]
            raise TrainingError(
                f"the loss became {float(total.detach())} at step {self.step} (phase '{ph.name}', terms {bad}); "
                f"training stopped before the bad update. The last usable checkpoint is "
                f"{self.ckpts.latest() or 'none (none was written yet)'}; resume from it with --resume after "
                f"lowering optim.lr or the weight of {bad or 'the terms'}.")
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = None
        if cfg.optim.grad_clip > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, cfg.optim.grad_clip))
        self.opt.step()
        if self.ema is not None:
            with torch.no_grad():
                for e, p in zip(self.ema.parameters(), self.student.parameters()):
                    e.lerp_(p.detach(), 1 - cfg.ema.decay)
        d_loss = None
        if gan_on:
            self.opt_d.zero_grad(set_to_none=True)
            d = discriminator_hinge(self.disc, real.float(), video.float())
            d.backward()
            if self.env.world > 1:
                for p in self.disc.parameters():
                    if p.grad is not None:
                        torch.distributed.all_reduce(p.grad)
                        p.grad /= self.env.world
            self.opt_d.step()
            d_loss = float(d.detach())
        self.phase_step += 1
        pixel = sum(values.get(n, 0.0) for n in PIXEL_TERMS if n in values)
        if self.decay is not None and any(n in values for n in PIXEL_TERMS):
            self.decay.update(pixel)
        step_s = time.perf_counter() - t0
        scalars = {"train/loss": float(total.detach()), **{f"train/{n}": v for n, v in values.items()},
                   **{f"train/{k}": float(v.detach()) for k, v in parts.items()},
                   **{f"weight/{n}": float(w) for n, w in weights.items()}, "lr": lr}
        if d_loss is not None:
            scalars["train/gan_d"] = d_loss
        if grad_norm is not None:
            scalars["train/grad_norm"] = grad_norm
        scalars = self.env.mean(scalars)
        scalars["perf/step_s"] = step_s
        scalars["perf/samples_per_s"] = batch * self.env.world / step_s
        if self.device.type == "cuda":
            scalars["perf/peak_mem_bytes"] = float(torch.cuda.max_memory_allocated(self.device))
        return scalars

    def _switch_reason(self, ph, scalars: dict, metrics: dict | None) -> str | None:
        p = ph.plateau
        value = (metrics or {}).get(p.metric) if p.metric.startswith("val/") else scalars.get(p.metric)
        plateau = p.enabled and value is not None and self.plateau.update(float(value))
        if self.phase_step >= ph.max_steps:
            return f"max_steps ({ph.max_steps})"
        if plateau and self.phase_step >= ph.min_steps:
            return (f"plateau of {p.metric} (no {p.min_delta:g}{' relative' if p.relative else ''} improvement of the "
                    f"smoothed value in {p.patience} updates)")
        return None

    def _next_phase(self, reason: str):
        old = self.cfg.phases[self.phase_idx].name
        self.phase_idx += 1
        self.phase_step = 0
        if self.phase_idx >= len(self.cfg.phases):
            if self.store:
                self.store.end_phase(self.step)
                self.store.log_event(self.step, "phase_end", {"name": old, "reason": reason})
            return
        self._new_phase_state()
        self._emit("on_phase", self.step, old, self.cfg.phases[self.phase_idx].name, reason)
        self._skip_unusable_phases()
        if getattr(self, "progress", None) is not None:  # a phase that ended early shortens the run
            self.progress.set_total(self.progress.n + self._steps_left())

    def _adaptive_gan_factor(self, terms: dict, weights: dict, z: torch.Tensor) -> float:
        """||d rec / d W_out|| / ||d gan / d W_out|| (detached), rec = the weighted non-GAN terms."""
        rec = sum(weights[n] * terms[n] for n in terms if n != "gan")
        if self._out_weight is None:
            self._out_weight = output_layer_weight(self.student, z)
        return adaptive_gan_factor(rec, terms["gan"], self._out_weight, self.cfg.gan.adaptive_max)

    def _skip_unusable_phases(self):
        while self.phase_idx < len(self.cfg.phases):
            why = self._phase_skip_reason(self.cfg.phases[self.phase_idx])
            if why is None:
                return
            self._next_phase(why)

    # -- evaluation -------------------------------------------------------------------------------
    @torch.no_grad()
    def _evaluate(self) -> dict:
        metrics = None
        if self.env.main:
            metrics = self._validation_metrics()
            if metrics.get(BEST_METRIC, -math.inf) > self.best:
                self.best, self.best_step = metrics[BEST_METRIC], self.step
                self._eval_model().save(self.out / "best", overwrite=True)
                self.store.log_event(self.step, "best", {BEST_METRIC: self.best})
            if self.cfg.sample_every and self.step % self.cfg.sample_every == 0:
                self._sample()
        metrics = self.env.broadcast(metrics)
        self.best, self.best_step = self.env.broadcast((self.best, self.best_step))
        self._emit("on_eval", self.step, metrics)
        return metrics

    def _eval_model(self):
        return self.ema if self.ema is not None else self.student

    def _validation_metrics(self) -> dict:
        return validation_metrics(self._eval_model(), self.val, self.autocast, self.cfg.vmaf)

    def _sample(self):
        path = write_triptych(self.out / "samples" / f"triptych-{self.step:07d}.mp4", self._eval_model(), self.val[0])
        self.store.add_sample(self.step, "triptych", path)

    # -- the end ----------------------------------------------------------------------------------
    def _finish(self) -> dict:
        metrics = self._evaluate() if self.step % self.cfg.eval_every else None
        if metrics is None and self.store:
            metrics = {k: v for k, v in self.store.latest().items() if k.startswith("val/")}
        self._checkpoint()
        final = {"out": str(self.out), "store": str(self.out / "store.sqlite"), "step": self.step,
                 "best": str(self.out / "best"), "best_step": self.best_step, "best_val_psnr": self.best,
                 "last": str(self.out / "last"), "checkpoint": self.ckpts.latest(),
                 "metrics": metrics, "warnings": self.warnings}
        if self.store:
            final["phases"], final["initial"] = phase_history(self.out, BEST_METRIC)
            self.store.finish("finished", final=final)
        final = self.env.broadcast(final)    # every rank returns rank 0's view of the run
        self._emit("on_end", final)
        return final

    def _resume_failed(self, exc: BaseException):
        """A resume that failed in its setup changed nothing the run had: its status (e.g. finished) stays."""
        text = f"{type(exc).__name__}: {exc}"
        self.store.log_event(self.store.last_step() or 0, "resume_failed", {"message": text})
        previous = self.store.previous_status
        self.store.finish(previous if previous in ("finished", "failed") else "interrupted")

    def _fail(self, exc: BaseException):
        if isinstance(exc, KeyboardInterrupt):
            if self.store:
                self.store.finish("interrupted")
            return
        if self.store:
            text = f"{type(exc).__name__}: {exc}"
            try:
                self.store.log_event(self.step, "error", {"message": text})
                self.store.finish("failed", error=text)
            except Exception as store_exc:  # e.g. the disk that stopped the run is full: report the first error
                log.warning("could not record the failure in %s's run store (%s); --resume still continues "
                            "from the last checkpoint", self.out, store_exc)
