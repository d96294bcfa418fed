"""The configuration of a distillation run: nested dataclasses, loaded from TOML, YAML or a dict.

Every section is strict: an unknown key is rejected (naming the key and the valid ones) and bad
values are rejected before anything loads, so a typo never silently trains with a default.
``DistillConfig.to_dict()`` is the resolved config the run store records.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from lab.devices import check_threads, device_arg
from lab.errors import ConfigError
from lab.data.dataset import training_item
from lab.data.heldout import check_validation_clip
from lab.distill.losses import LOSSES
from lab.training.config import build_dataclass, read_config_file


NORM_STATS = ("train", "frozen")


@dataclass
class StudentConfig:
    """A saved student folder, or a recipe built at start with lab.prune + lab.ops."""
    folder: str | None = None
    weights: str | None = None               # for a registered name: 'random' starts from scratch (default: its own)
    keep: float | dict | str | None = None   # ratio, {stage: ratio} or 'flash-vaed'
    criterion: str = "independence"
    refine: int = 0                          # passes of output-checked selection (lab.prune.refine); 0 = off
    operators: str | dict | None = None      # plan name ('flash-vaed'), 'STAGE=OP,...' or {stage: op}
    calibration_clips: list = field(default_factory=lambda: ["bbb-128"])
    calibration_frames: int = 9
    calibration_size: int = 64
    # 'frozen': batch norms normalise with their running statistics and never update them, as they do at
    # inference (a fine-tune at batch 1 would otherwise re-estimate them from one crop's frames a step).
    norm_stats: str = "train"


@dataclass
class DataConfig:
    # Clip names and files ('bikes[0:192]') are held in memory; folders, globs ('/videos/**/*.mp4') and a
    # manifest are streamed from disk by `workers` loader processes (lab.data.dataset, lab.data.stream).
    clips: list = field(default_factory=lambda: ["bbb-128", "bikes"])
    manifest: str | None = None      # CSV/JSONL of path[,start,stop,split]; rows of other splits than train are held out
    cache: str | None = None         # a latent cache (python -m lab data encode): train on it, no encoder per step
    workers: int = 2                 # loader processes of a streamed spec (0: build batches in the trainer)
    # Validation picks 'best' and may end phases: neither a training clip nor a held-out one (lab.data.heldout).
    val_clips: list = field(default_factory=lambda: ["bigbuckbunny"])
    crop: int = 64
    frames: int = 9
    batch: int = 1
    short_sides: list = field(default_factory=lambda: [128])
    val_frames: int = 9
    val_size: int = 64


@dataclass
class OptimConfig:
    lr: float = 1e-4
    betas: list = field(default_factory=lambda: [0.9, 0.95])
    weight_decay: float = 0.0
    grad_clip: float = 1.0          # 0 disables clipping
    warmup_steps: int = 20          # per phase
    min_lr_ratio: float = 0.1       # cosine floor, as a fraction of the phase's lr


@dataclass
class EMAConfig:
    """An exponential moving average of the student, which evaluations, ``best`` and ``last`` use.

    ``decay`` None (the default) chooses it from the run's length: the EMA then averages over about a tenth
    of the run's steps (decay = exp(-10 / total max_steps), at most METHOD_EMA_DECAY, the paper's 0.999, which a
    run of 10000 steps or more gets). A fixed 0.999 averages over ~1000 steps, so a run of a few hundred would
    evaluate and ship a student still mostly made of its initial weights. An explicit decay is used as given,
    with a warning (``ema_warning``) when the initial weights would still weigh over 1% at the last step."""
    enabled: bool = True
    decay: float | None = None


@dataclass
class PlateauConfig:
    """A phase ends when ``metric`` (smoothed by an EMA) has not improved by ``min_delta`` (relative
    to its best, or absolute) for ``patience`` updates (train metrics update every step, val metrics
    every eval)."""
    enabled: bool = True
    metric: str = "train/loss"
    mode: str = "min"               # min | max
    patience: int = 50
    min_delta: float = 0.01
    relative: bool = True
    smoothing: float = 0.9          # EMA factor of the smoothed metric (0 = raw values)


@dataclass
class PhaseConfig:
    name: str = "phase"
    losses: dict = field(default_factory=lambda: {"pixel_teacher_l1": 1.0})
    max_steps: int = 100
    max_minutes: float = 0.0        # > 0: the phase also ends after the first step that starts with this much of its
                                    # training time spent, and its cosine follows whichever budget runs out first
                                    # (a GPU session gives minutes, not steps)
    min_steps: int = 0              # plateau is not checked before this many steps of the phase
    plateau: PlateauConfig = field(default_factory=PlateauConfig)
    feature_decay: bool = False     # w_feat = w0 * clamp(pixel_now / pixel_at_phase_start, 0, 1)
    crop: int | None = None         # override data.crop (phase 3 at target size)
    frames: int | None = None       # override data.frames
    batch: int | None = None
    lr: float | None = None         # override optim.lr


@dataclass
class PerceptualConfig:
    required: bool = False          # True: fail at start when the LPIPS weights are missing


@dataclass
class GANConfig:
    start_step: int = 0             # the GAN term is on from this global step (Heaviside)
    lr: float = 1e-4
    channels: int = 32
    # Scale the GAN term by ||grad of the other terms|| / ||grad of the GAN term|| at the student's output
    # layer (the adaptive weight of Esser et al., VQGAN), so that the phase's gan weight means "this
    # fraction of the reconstruction signal" whatever the loss scales; off = the paper's fixed weight.
    adaptive: bool = False
    adaptive_max: float = 1e4       # clamp of the adaptive factor


def default_phases() -> list[PhaseConfig]:
    return [
        PhaseConfig(name="align", losses={"feature": 1.0}, max_steps=100,
                    plateau=PlateauConfig(metric="train/feature", patience=30)),
        PhaseConfig(name="joint", losses={"feature": 1.0, "pixel_teacher_l1": 1.0, "pixel_real_l1": 0.5,
                                          "perceptual": 0.1}, max_steps=200, feature_decay=True,
                    plateau=PlateauConfig(metric="train/pixel_teacher_l1", patience=50)),
        PhaseConfig(name="finetune", losses={"pixel_teacher_l1": 1.0, "pixel_real_l1": 0.5, "perceptual": 0.1},
                    max_steps=200, plateau=PlateauConfig(metric="val/psnr", mode="max", patience=5,
                                                         min_delta=0.05, relative=False, smoothing=0.0)),
    ]


@dataclass
class DistillConfig:
    teacher: str = "mini-wan"       # registered name or a teacher folder
    teacher_weights: str | None = None
    student: StudentConfig = field(default_factory=StudentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    phases: list[PhaseConfig] = field(default_factory=default_phases)
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)
    gan: GANConfig = field(default_factory=GANConfig)
    feature_stages: list | None = None   # stages to align (default: every stage but conv_in and head)
    # The pixel terms' weight of each window's first frame against the others' 1: a causal decode's first frame
    # comes from one latent frame alone and is its weakest (mini-wan-flash: 27 dB to its teacher, 32-35 after);
    # it is also the conditioning image of image-to-video.
    first_frame_weight: float = 1.0
    eval_every: int = 50
    checkpoint_every: int = 100          # steps (0: only at phase ends and at the end)
    checkpoint_minutes: float = 0.0      # also checkpoint after this much wall time (0: off)
    keep_checkpoints: int = 2
    sample_every: int = 100              # a triptych at evaluations whose step is a multiple of this (0: off)
    vmaf: bool = False
    seed: int = 0
    device: str = "cpu"
    dtype: str = "fp32"                  # fp32 | bf16 (autocast on CUDA)
    threads: int | None = None           # torch CPU threads (None: torch's choice; CPU configs pin 1)
    log_every: int = 1                   # log (and feed train/ plateau rules) every N steps

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> "DistillConfig":
        if not self.phases:
            raise ConfigError("phases is empty: give at least one [[phases]] section.")
        if self.student.folder is None and self.student.keep is None:
            raise ConfigError("student needs either 'folder' (a saved student) or 'keep' (a pruning recipe: a "
                              "ratio, {stage: ratio} or 'flash-vaed').")
        if self.student.norm_stats not in NORM_STATS:
            raise ConfigError(f"student.norm_stats must be one of {', '.join(NORM_STATS)}, got "
                              f"{self.student.norm_stats!r} ('frozen' keeps batch-norm statistics as shipped).")
        if not isinstance(self.first_frame_weight, (int, float)) or not self.first_frame_weight > 0:
            raise ConfigError(f"first_frame_weight must be a number > 0 (1 weighs the first frame as the others), got "
                              f"{self.first_frame_weight!r}.")
        if not isinstance(self.student.refine, int) or self.student.refine < 0:
            raise ConfigError(f"student.refine must be a whole number of passes >= 0 (0 = off), got "
                              f"{self.student.refine!r}.")
        for i, ph in enumerate(self.phases):
            where = f"phases[{i}] ({ph.name})"
            if not ph.losses:
                raise ConfigError(f"{where}: losses is empty; name at least one of {', '.join(LOSSES)}.")
            for name, w in ph.losses.items():
                if name not in LOSSES:
                    raise ConfigError(f"{where}: unknown loss '{name}'; losses: {', '.join(LOSSES)} "
                                      f"(add one with lab.distill.losses.register_loss).")
                if not isinstance(w, (int, float)) or w < 0:
                    raise ConfigError(f"{where}: weight of '{name}' must be a number >= 0, got {w!r}.")
            _positive(where + ".max_steps", ph.max_steps)
            if isinstance(ph.max_minutes, bool) or not isinstance(ph.max_minutes, (int, float)) or ph.max_minutes < 0:
                raise ConfigError(f"{where}.max_minutes must be a number of minutes >= 0 (0: no time limit), got "
                                  f"{ph.max_minutes!r}.")
            if ph.plateau.mode not in ("min", "max"):
                raise ConfigError(f"{where}.plateau.mode must be 'min' or 'max', got {ph.plateau.mode!r}.")
            if not 0 <= ph.plateau.smoothing < 1:
                raise ConfigError(f"{where}.plateau.smoothing must be in [0, 1), got {ph.plateau.smoothing}.")
            _positive(where + ".plateau.patience", ph.plateau.patience)
            for k in ("crop", "frames", "batch"):
                if getattr(ph, k) is not None:
                    _positive(f"{where}.{k}", getattr(ph, k))
            if ph.feature_decay and "feature" not in ph.losses:
                raise ConfigError(f"{where}: feature_decay needs a 'feature' loss in the phase.")
        for k in ("crop", "frames", "batch", "val_frames", "val_size"):
            _positive(f"data.{k}", getattr(self.data, k))
        if not (self.data.clips or self.data.manifest or self.data.cache):
            raise ConfigError("data.clips is empty: name training clips (bbb-128, bigbuckbunny, bikes), paths, folders "
                              "or globs, or give data.manifest or data.cache.")
        if not isinstance(self.data.workers, int) or isinstance(self.data.workers, bool) or self.data.workers < 0:
            raise ConfigError(f"data.workers must be a whole number >= 0 (0: no loader processes), got "
                              f"{self.data.workers!r}.")
        if self.data.cache:
            fixed = [f"phases[{i}] ({ph.name}).{k}" for i, ph in enumerate(self.phases) for k in ("crop", "frames")
                     if getattr(ph, k) is not None and getattr(ph, k) != getattr(self.data, k)]
            if fixed:
                raise ConfigError(f"data.cache holds windows of one shape (data.frames x data.crop); {fixed[0]} asks "
                                  f"for another. Drop the override, or train that phase without the cache.")
        for item in self.data.clips:
            training_item(str(item))  # held-out clips and frames are never trained on
        trained = {training_item(str(c))[0] for c in self.data.clips if training_item(str(c))}
        for item in self.data.val_clips:
            check_validation_clip(str(item), self.data.val_frames)  # model selection never sees held-out clips
        overlap = sorted(str(v) for v in self.data.val_clips if str(v) in trained)
        if overlap:
            raise ConfigError(f"data.val_clips {overlap} are also training clips; a validation clip must be neither "
                              f"trained on nor held out (remove it from data.clips).")
        if not self.optim.lr > 0:
            raise ConfigError(f"optim.lr must be > 0, got {self.optim.lr}.")
        if len(self.optim.betas) != 2 or not all(0 <= b < 1 for b in self.optim.betas):
            raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {self.optim.betas}.")
        if self.ema.decay is None or self.ema.decay == getattr(self.ema, "_automatic", None):
            # Resolved here, so the run store records the decay the run used; re-resolved when the same config
            # object is validated again after an edit (a notebook lengthening the phases), never once recorded.
            # A decay assigned after the resolution (cfg.ema.decay = 0.999) is the user's and is kept.
            self.ema.decay = auto_ema_decay(total_steps(self))
            self.ema._automatic = self.ema.decay
        if isinstance(self.ema.decay, bool) or not isinstance(self.ema.decay, (int, float)) \
                or not 0 < self.ema.decay < 1:
            raise ConfigError(f"ema.decay must be in (0, 1), got {self.ema.decay!r}; leave it out to choose it from "
                              f"the run's length.")
        if self.dtype not in ("fp32", "bf16"):
            raise ConfigError(f"dtype must be fp32 or bf16, got {self.dtype!r}.")
        for k in ("eval_every", "log_every", "keep_checkpoints"):
            _positive(k, getattr(self, k))
        if self.threads is not None:
            _positive("threads", self.threads)
            check_threads(self.threads, "threads in the config ")  # torch would try (and fail) to start them all
        device_arg(self.device, error=ConfigError, where="device in the config: ")
        for k in ("checkpoint_every", "sample_every"):
            if getattr(self, k) < 0:
                raise ConfigError(f"{k} must be >= 0, got {getattr(self, k)}.")
        return self


#: The EMA decay of the method (Flash-VAED): right for runs of tens of thousands of steps.
METHOD_EMA_DECAY = 0.999
#: An automatic EMA averages over this share of the run's steps.
EMA_HORIZON_SHARE = 0.1


def total_steps(cfg: DistillConfig) -> int:
    """The most steps the run can take: every phase to its max_steps (plateaus only shorten it)."""
    return sum(ph.max_steps for ph in cfg.phases)


def auto_ema_decay(steps: int) -> float:
    """The decay whose time constant is EMA_HORIZON_SHARE of ``steps`` (decay = exp(-1 / (share * steps))), so
    the initial weights weigh e^-10 at the last step however short the run, capped at METHOD_EMA_DECAY:
    120 steps -> 0.920, 300 -> 0.967, 10000 or more -> 0.999."""
    return min(METHOD_EMA_DECAY, round(math.exp(-1.0 / (EMA_HORIZON_SHARE * max(1, steps))), 6))


def ema_warning(cfg: DistillConfig) -> str | None:
    """Why the EMA of this run would barely move from the initial student, or None when it is fine."""
    steps, d = total_steps(cfg), cfg.ema.decay
    if not cfg.ema.enabled or d is None or d ** steps <= 0.01:
        return None
    return (f"ema.decay {d:g} averages over ~{1 / (1 - d):.0f} steps but the run has at most {steps}: the EMA student "
            f"(what evaluations, best and last use) keeps {100 * d ** steps:.0f}% of the initial weights at the end. "
            f"Leave ema.decay out (chosen from the run's length: {auto_ema_decay(steps):g} here) or set "
            f"ema.enabled = false.")


def _positive(where: str, v) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ConfigError(f"{where} must be a positive integer, got {v!r}.")


# ----- loading -----------------------------------------------------------------------------------
# Keys that once existed, with why they are gone: a config that names one gets the reason, not "unknown key".
REMOVED = {
    "grad_checkpointing": "grad_checkpointing was removed: it never saved memory. The students never declared "
                          "support, and diffusers' Wan decoder ignores the flag in its causal loop. The students "
                          "are small (0.2-6M parameters), so lower data.batch or data.crop if a step does not fit."}


def from_dict(data: dict) -> DistillConfig:
    """A validated DistillConfig from a plain dict (the shape of the TOML/YAML file)."""
    gone = [k for k in data if k in REMOVED] if isinstance(data, dict) else []
    if gone:
        raise ConfigError(REMOVED[gone[0]])
    return build_dataclass(DistillConfig, data, "config").validate()


def load_config(source) -> DistillConfig:
    """A DistillConfig from a path (.toml, .yaml/.yml, .json), a dict, or a DistillConfig."""
    if isinstance(source, DistillConfig):
        return source.validate()
    if isinstance(source, dict):
        return from_dict(source)
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; see configs/distill/ for examples.")
    return from_dict(read_config_file(path))
