"""Distillation as a task of the lab's training loop (``DistillTask``; ``lab.distill.run.distill`` runs it with
``lab.training.loop.fit``, which owns the run folder, store, signals, schedule, backward, DDP, NaN policy,
checkpoints and resume). Its helpers each do one job: ``student`` (what trains), ``data`` (windows and
latents), ``losses`` and ``feature_weight``, ``evaluation`` and ``summary`` (the run's final record).

One step (``DistillTask.step``): sample real windows -> the frozen teacher encodes and decodes them (its stage
outputs recorded by hooks) -> the student decodes the same latents -> the phase's weighted loss terms (the
student's objective, and the discriminator's hinge when the GAN term is on) -> the loop's update -> the EMA.
After each step the phase may switch, on a plateau of a smoothed metric or at max_steps; the reason is
recorded in the run store. The student may be any VideoDecoder with ``decode_with_grad``; a phase made only of
feature terms is skipped (reason 'no feature taps') when the student has no comparable stages. Validation
(of the EMA student when there is one) keeps ``best/``; ``last/`` is saved with every checkpoint.

A checkpoint's tensors: ``student.*``, ``heads.*`` (the feature aligner), ``ema.*`` and ``disc.*`` where the run
has them; its state: the phase, its step, the best, the plateau and feature-weight state and both optimizers
(the loop adds the step and every RNG). Loss terms are summed in name order, not in the config's key order: a
resumed run reads its config back from config.json (keys sorted), and a different summation order alone makes
its losses drift (~1e-4 after a few steps) from those of an uninterrupted run.

Scale-out: under ``torchrun`` the student and heads are wrapped in DDP, each rank draws its own windows (its
own generator, seed + rank), and the loop averages the discriminator's gradients and the logged scalars, so
every rank takes the same phase decisions.
"""

from __future__ import annotations

import copy
import math
from contextlib import nullcontext
from pathlib import Path

import torch

from lab.distill.config import DistillConfig, ema_warning
from lab.distill.data import load_val_clips, training_batches
from lab.distill.evaluation import validation_metrics, write_triptych
from lab.distill.feature_weight import FeatureWeightDecay
from lab.distill.features import FeatureAligner, StageTaps, comparable_stages
from lab.distill.losses import (LOSSES, NEEDS, PIXEL_TERMS, LossInputs, PatchGAN3D, adaptive_gan_factor,
                               discriminator_hinge, output_layer_weight)
from lab.distill.student import StudentModule, build_student, stage_widths
from lab.distill.summary import phase_history
from lab.errors import CheckpointError, ConfigError, WeightsNotFoundError
from lab.eval.backbones import load_lpips
from lab.models import load_decoder
from lab.runtime.spec import apply_runtime, default_runtime
from lab.training.checkpoints import CheckpointFolder
from lab.training.schedule import PlateauDetector
from lab.training.task import Cadence, Objective, RunContext, Schedule, Step, Task

BEST_METRIC = "val/psnr"


class DistillTask(Task):
    kind, label = "distill", "distill"
    weights_prefix = "student."
    state_keys = ("step", "phase_idx", "phase_step", "optimizer", "data_rng", "torch_rng")

    def __init__(self, cfg: DistillConfig, out: Path):
        self.cfg, self.out = cfg, Path(out)
        self.device = cfg.device
        self.cadence = Cadence(log_every=cfg.log_every, eval_every=cfg.eval_every,
                               checkpoint_every=cfg.checkpoint_every, checkpoint_minutes=cfg.checkpoint_minutes,
                               keep_checkpoints=cfg.keep_checkpoints)
        self.checkpoints = CheckpointFolder(self.out, self.state_keys, self.weights_prefix)
        self.resume_hint = "resume from it with --resume"
        self.restart_hint = f"start the run over: python -m lab distill --out {self.out} --restart"

    def config(self) -> dict:
        return self.cfg.to_dict()

    # -- setup ------------------------------------------------------------------------------------
    def setup(self, run: RunContext):
        cfg, env = self.cfg, run.env
        self.run, self.env, self.dev = run, env, env.device
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if cfg.dtype == "bf16"
                         and self.dev.type == "cuda" else nullcontext())
        ema_note = ema_warning(cfg)
        if ema_note:
            run.warn(ema_note)
        torch.manual_seed(cfg.seed + env.rank)
        self.teacher = load_decoder(cfg.teacher, weights=cfg.teacher_weights, device=self.dev).eval()
        self.teacher.requires_grad_(False)
        init = self.out / "init"
        # A run resumed before it saved its student (it stopped during setup) builds it now: the same
        # config and seed give the same student.
        if env.main and not (init / "lab_decoder.json").exists():
            build_student(cfg, self.teacher).save(init, overwrite=True)  # the run's own folder
        env.barrier()
        if not (init / "lab_decoder.json").exists():
            raise ConfigError(f"cannot resume {self.out}: its initial student folder {init} is missing.")
        self.student = load_decoder(str(init), device=self.dev).train()
        # Seeded again: building the student above draws from the global generator only when this process builds
        # it, and the alignment heads and the discriminator below draw their initial weights from it. A run
        # killed after saving its student but before its first checkpoint starts over from here, and must draw
        # the same weights as the run it replaces.
        torch.manual_seed(cfg.seed + env.rank)
        self.frozen_norms = frozen_norms(self.student) if cfg.student.norm_stats == "frozen" else []
        if cfg.student.norm_stats == "frozen" and not self.frozen_norms:
            run.warn(f"student.norm_stats = 'frozen' has nothing to hold: {type(self.student).__name__} has no batch "
                     f"norms")
        if not hasattr(self.student, "decode_with_grad"):
            raise ConfigError(f"the student {type(self.student).__name__} has no decode_with_grad; it cannot train.")
        # The frozen teacher only decodes, without gradients: from here on it runs as `lab decode` runs it
        # (default_runtime: its family's fused runtime where that is the measured default, the CPU today; 25% less
        # teacher time per step for mini-wan). Not before: building the student analyses the teacher's inner
        # layers, which the fused runtime bypasses. The stage taps below hook stage modules, whose forwards the
        # fused runtime keeps, so feature alignment sees the same maps (within rounding; tests/distill).
        apply_runtime(self.teacher, default_runtime(self.teacher))

        self.val = load_val_clips(self.teacher, cfg.data.val_clips, cfg.data.val_frames, cfg.data.val_size)
        self.data = training_batches(self.teacher, cfg.data, teacher_name=cfg.teacher, seed=cfg.seed,
                                     rank=env.rank, world=env.world, autocast=self.autocast)
        # The EMA copy is made before any hook is registered on the student (deepcopy would copy hooks).
        self.ema = copy.deepcopy(self.student).eval().requires_grad_(False) if cfg.ema.enabled else None
        # Stage widths are read off one forward pass; any latents of the right geometry will do when
        # there is no validation clip (widths depend on the architecture, not on the values).
        geo = self.teacher.geometry
        probe = (self.val[0].latents if self.val else
                 torch.zeros(1, geo.channels, 2, 4, 4, device=self.dev, dtype=self.teacher.dtype))
        stages = comparable_stages(self.teacher, self.student, cfg.feature_stages)
        aligner = FeatureAligner(self.student, stages, stage_widths(self.student, stages, probe),
                                 stage_widths(self.teacher, stages, probe)).to(self.dev)
        self.model = StudentModule(self.student, aligner)
        self.teacher_taps = StageTaps(self.teacher, stages) if stages else None
        self.available = {"features": bool(stages), "lpips": False, "discriminator": False}

        used = {name for ph in cfg.phases for name, w in ph.losses.items() if w > 0}
        self.lpips = None
        if used & {"perceptual", "perceptual_teacher"}:
            try:
                self.lpips = load_lpips(self.dev)
                self.available["lpips"] = True
            except WeightsNotFoundError as exc:
                if cfg.perceptual.required:
                    raise ConfigError(f"perceptual.required is set but {exc}") from None
                run.warn(f"perceptual loss disabled: {exc} (set perceptual.required = true to make this an error)")
        self.disc = self.opt_d = None
        self._out_weight = None  # the student's output-layer weight, for gan.adaptive (found on first use)
        if "gan" in used:
            self.disc = PatchGAN3D(cfg.gan.channels).to(self.dev)
            self.opt_d = torch.optim.AdamW(self.disc.parameters(), lr=cfg.gan.lr, betas=tuple(cfg.optim.betas))
            self.available["discriminator"] = True

        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
                                     weight_decay=cfg.optim.weight_decay)
        self.gen = torch.Generator().manual_seed(cfg.seed * 1000 + env.rank)
        self.phase_idx, self.phase_step = 0, 0
        self.wall_s = self.phase_wall0 = 0.0  # training seconds: the run's, and the run's when this phase began
        self.best, self.best_step = -math.inf, None
        self._new_phase_state()
        return self.model

    def begin(self, step: int, restored: bool) -> None:
        self.run.emit("on_phase", 0, None, self.cfg.phases[0].name, "start")
        self._skip_unusable_phases()

    def phase_index(self, name: str) -> int:
        return [p.name for p in self.cfg.phases].index(name)

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

    # -- a step -----------------------------------------------------------------------------------
    def schedule(self, step: int, wall_s: float) -> Schedule:
        ph, o = self.cfg.phases[self.phase_idx], self.cfg.optim
        # Training time as the loop has it at the step's start: the clock every rank agrees on (broadcast), so
        # all ranks end a timed phase at the same step: the first one that starts with its minutes spent.
        self.wall_s = wall_s
        if self.phase_step == 0:
            self.phase_wall0 = wall_s  # the phase's clock starts with its first step
        return Schedule(self.phase_step, ph.max_steps, ph.lr or o.lr, o.warmup_steps, o.min_lr_ratio,
                        min_progress=self._phase_minutes() / ph.max_minutes if ph.max_minutes else 0.0)

    def _phase_minutes(self) -> float:
        """Training minutes of the current phase, as of the current step's start."""
        return (self.wall_s - self.phase_wall0) / 60

    def step(self, step: int, model) -> Step:
        cfg = self.cfg
        ph = cfg.phases[self.phase_idx]
        batch, frames, crop = ph.batch or cfg.data.batch, ph.frames or cfg.data.frames, ph.crop or cfg.data.crop
        real, z = self.data.sample(batch, frames, crop, self.gen, step=step)  # step: streamed/cached data
        weights = dict(sorted(self._active_losses(ph).items()))  # name order: see the module docstring
        need_feats = "feature" in weights
        if self.teacher_taps is not None:
            self.teacher_taps.collect()
        with torch.no_grad(), self.autocast:
            teacher_video = self.teacher.decode(z)
        teacher_feats = self.teacher_taps.collect() if self.teacher_taps is not None else None
        if self.decay is not None and "feature" in weights:
            weights["feature"] = self.decay.weight
        for norm in self.frozen_norms:  # validation puts the student back in training mode: hold them each step
            norm.eval()
        gan_on = "gan" in weights and step >= cfg.gan.start_step
        if not gan_on:
            weights.pop("gan", None)
        with self.autocast:
            video, pairs = model(z, teacher_feats if need_feats else None)
            inputs = LossInputs(video.float(), teacher_video.float(), real.float(),
                                {s: (a.float(), b.float()) for s, (a, b) in pairs.items()}, self.lpips, self.disc,
                                first_frame_weights(video.shape[2], cfg.first_frame_weight, video.device))
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
        objectives = [Objective(total, self.opt, self.params, clip=cfg.optim.grad_clip)]
        scalars = {"train/loss": float(total.detach()), **{f"train/{n}": v for n, v in values.items()},
                   **{f"train/{k}": float(v.detach()) for k, v in parts.items()},
                   **{f"weight/{n}": float(w) for n, w in weights.items()}}
        if gan_on:
            # Its own update after the student's (the fake windows are detached; its weights are not changed
            # by the student's step, so computing it here gives the same loss as after it).
            d = discriminator_hinge(self.disc, real.float(), video.float())
            objectives.append(Objective(d, self.opt_d, list(self.disc.parameters()), scheduled=False, in_ddp=False))
            scalars["train/gan_d"] = float(d.detach())
        self.phase_step += 1
        pixel = sum(values.get(n, 0.0) for n in PIXEL_TERMS if n in values)
        if self.decay is not None and any(n in values for n in PIXEL_TERMS):
            self.decay.update(pixel)

        def explain():
            bad = [n for n, v in values.items() if not math.isfinite(v)]
            return f"phase '{ph.name}', terms {bad}", f"optim.lr or the weight of {bad or 'the terms'}"
        return Step(objectives, scalars, batch, self.phase_idx, ph.name, explain)

    def after_update(self) -> None:
        if self.ema is not None:
            with torch.no_grad():
                for e, p in zip(self.ema.parameters(), self.student.parameters()):
                    e.lerp_(p.detach(), 1 - self.cfg.ema.decay)

    def _adaptive_gan_factor(self, terms: dict, weights: dict, z: torch.Tensor) -> float:
        """||d rec / d W_out|| / ||d gan / d W_out|| (detached), rec = the weighted non-GAN terms."""
        rec = sum(weights[n] * terms[n] for n in terms if n != "gan")
        if self._out_weight is None:
            self._out_weight = output_layer_weight(self.student, z)
        return adaptive_gan_factor(rec, terms["gan"], self._out_weight, self.cfg.gan.adaptive_max)

    # -- phases -----------------------------------------------------------------------------------
    def after_step(self, step: int, scalars: dict | None, metrics: dict | None) -> bool:
        ph = self.cfg.phases[self.phase_idx]
        reason = self._switch_reason(ph, scalars or {}, metrics)
        improved = metrics is not None and self.best_step == step
        if reason:
            self._next_phase(step, reason)
        return bool(reason) or improved

    def _switch_reason(self, ph, scalars: dict, metrics: dict | None) -> str | None:
        p = ph.plateau
        value = (metrics or {}).get(p.metric) if p.metric.startswith("val/") else scalars.get(p.metric)
        plateau = p.enabled and value is not None and self.plateau.update(float(value))
        if self.phase_step >= ph.max_steps:
            return f"max_steps ({ph.max_steps})"
        if ph.max_minutes and self._phase_minutes() >= ph.max_minutes:
            return f"max_minutes ({ph.max_minutes:g})"
        if plateau and self.phase_step >= ph.min_steps:
            return (f"plateau of {p.metric} (no {p.min_delta:g}{' relative' if p.relative else ''} improvement of the "
                    f"smoothed value in {p.patience} updates)")
        return None

    def _next_phase(self, step: int, reason: str):
        old = self.cfg.phases[self.phase_idx].name
        self.phase_idx += 1
        self.phase_step = 0
        if self.phase_idx >= len(self.cfg.phases):
            if self.run.store:
                self.run.store.end_phase(step)
                self.run.store.log_event(step, "phase_end", {"name": old, "reason": reason})
            return
        self._new_phase_state()
        self.run.emit("on_phase", step, old, self.cfg.phases[self.phase_idx].name, reason)
        self._skip_unusable_phases(step)

    def _skip_unusable_phases(self, step: int = 0):
        while self.phase_idx < len(self.cfg.phases):
            why = self._phase_skip_reason(self.cfg.phases[self.phase_idx])
            if why is None:
                return
            self._next_phase(step, why)

    def done(self, step: int, wall_s: float) -> bool:
        return self.phase_idx >= len(self.cfg.phases)

    def steps_left(self, step: int) -> int:
        """Steps the run can still take: the rest of the current phase and every later phase in full (an upper
        bound: a phase may end early on a plateau)."""
        phases = self.cfg.phases[self.phase_idx:]
        return sum(ph.max_steps for ph in phases) - (self.phase_step if phases else 0)

    # -- evaluation -------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, step: int) -> dict:
        metrics = None
        if self.env.main:
            metrics = validation_metrics(self._eval_model(), self.val, self.autocast, self.cfg.vmaf)
            if metrics.get(BEST_METRIC, -math.inf) > self.best:
                self.best, self.best_step = metrics[BEST_METRIC], step
                self._eval_model().save(self.out / "best", overwrite=True)
                self.run.store.log_event(step, "best", {BEST_METRIC: self.best})
            if self.cfg.sample_every and step % self.cfg.sample_every == 0:
                path = write_triptych(self.out / "samples" / f"triptych-{step:07d}.mp4", self._eval_model(),
                                      self.val[0])
                self.run.store.add_sample(step, "triptych", path)
        metrics = self.env.broadcast(metrics)
        self.best, self.best_step = self.env.broadcast((self.best, self.best_step))
        return metrics

    def _eval_model(self):
        return self.ema if self.ema is not None else self.student

    def best_record(self):
        return BEST_METRIC, self.best, self.best_step

    # -- checkpoints ------------------------------------------------------------------------------
    def state_dict(self):
        tensors = {f"student.{k}": v for k, v in self.student.state_dict().items()}
        tensors.update({f"heads.{k}": v for k, v in self.model.aligner.state_dict().items()})
        if self.ema is not None:
            tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        if self.disc is not None:
            tensors.update({f"disc.{k}": v for k, v in self.disc.state_dict().items()})
        state = {"phase_idx": self.phase_idx, "phase_step": self.phase_step, "phase_wall0": self.phase_wall0,
                 "best": self.best, "best_step": self.best_step, "plateau": self.plateau.state_dict(),
                 "decay": self.decay.state_dict() if self.decay else None, "optimizer": self.opt.state_dict(),
                 "opt_d": self.opt_d.state_dict() if self.opt_d else None}
        phase = self.cfg.phases[min(self.phase_idx, len(self.cfg.phases) - 1)].name
        return tensors, state, {"phase": phase, "best_step": self.best_step}

    def checkpointed(self, step: int, wall_s: float) -> None:
        self._eval_model().save(self.out / "last", overwrite=True)

    def load_state_dict(self, tensors: dict, state: dict, path: Path) -> None:
        group = lambda prefix: {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}  # noqa: E731
        try:
            self.student.load_state_dict(group("student."))
            self.model.aligner.load_state_dict(group("heads."))
            if self.ema is not None and group("ema."):
                self.ema.load_state_dict(group("ema."))
            if self.disc is not None and group("disc."):
                self.disc.load_state_dict(group("disc."))
            self.opt.load_state_dict(state["optimizer"])
            if self.opt_d is not None and state["opt_d"] is not None:
                self.opt_d.load_state_dict(state["opt_d"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path} does not match this run's student or losses ({str(exc).splitlines()[0]});"
                                  f" resume with the run's own config (drop --config).") from None
        self.phase_idx, self.phase_step = state["phase_idx"], state["phase_step"]
        self.phase_wall0 = float(state.get("phase_wall0", 0.0))  # runs written before phases had max_minutes
        self.best, self.best_step = state["best"], state["best_step"]
        if self.phase_idx < len(self.cfg.phases):
            self._new_phase_state()
            self.plateau.load_state_dict(state["plateau"])
            if self.decay is not None and state["decay"] is not None:
                self.decay.load_state_dict(state["decay"])

    def rank_state(self):
        return self.gen.get_state()

    def load_rank_state(self, state) -> None:
        self.gen.set_state(state.cpu())

    # -- the end ----------------------------------------------------------------------------------
    def final(self, step: int, wall_s: float, metrics: dict | None, signalled: bool) -> dict:
        store = self.run.store
        if metrics is None and store:
            metrics = {k: v for k, v in store.latest().items() if k.startswith("val/")}
        final = {"out": str(self.out), "store": str(self.out / "store.sqlite"), "step": step,
                 "best": str(self.out / "best"), "best_step": self.best_step, "best_val_psnr": self.best,
                 "last": str(self.out / "last"), "checkpoint": self.checkpoints.latest(), "metrics": metrics,
                 "warnings": self.run.warnings}
        if store:
            final["phases"], final["initial"] = phase_history(self.out, BEST_METRIC)
        if signalled:  # lab.distill.run ends the process as interrupted
            final["stopped_by"] = "signal"
        return final


def frozen_norms(student) -> list[torch.nn.Module]:
    """The student's batch norms, which ``student.norm_stats = 'frozen'`` keeps in eval mode while it trains: they
    normalise with their running statistics (their affine weights still learn) and never update them."""
    return [m for m in student.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def first_frame_weights(frames: int, weight: float, device) -> torch.Tensor | None:
    """The pixel terms' frame weights of a window: ``weight`` for its first frame, 1 for the rest (None: all 1)."""
    if weight == 1.0:
        return None
    w = torch.ones(frames, device=device)
    w[0] = weight
    return w
