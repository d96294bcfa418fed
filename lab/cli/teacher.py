"""python -m lab teacher train|export: train the lab's mini teachers on real clips, export them."""

from __future__ import annotations

import logging
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
    p.add_argument("action", choices=["train", "export"])
    # The trainable models are the families' presets (lab.teachers.presets); listing them here would load torch
    # and diffusers for --help, so an unknown name is answered with the list when the command runs.
    p.add_argument("--model", default="mini-wan", help="what to train: a preset, e.g. mini-wan or mini-ltx (an "
                                                       "unknown name lists them; default mini-wan)")
    p.add_argument("--run", help="run folder (store.sqlite, checkpoints/); an existing run is resumed "
                                 "(default runs/teachers/MODEL)")
    p.add_argument("--steps", type=positive_int, default=3000, help="total optimizer steps (default 3000)")
    p.add_argument("--batch", type=positive_int, help="clips per step (default: the preset's, 4 for Wan, 2 for LTX)")
    p.add_argument("--frames", type=positive_int,
                   help="frames per window, 1+4k (Wan, default 5) or 1+8k (LTX, default 9): the preset's default")
    p.add_argument("--crop", type=positive_int, help="square crop size in pixels (default: the preset's, 48 Wan, "
                                                     "64 LTX)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    p.add_argument("--warmup", type=int, default=100, help="linear warmup steps (default 100)")
    p.add_argument("--kl-weight", type=float, default=1e-6, help="KL weight (default 1e-6)")
    p.add_argument("--perceptual-weight", type=float, default=0.0,
                   help="LPIPS weight (default 0: off); needs the LPIPS backbone weights")
    add_downloads_arg(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--short-sides", default="128,256", help="scales the clips are kept at (default 128,256)")
    p.add_argument("--no-wan-clip", action="store_true",
                   help="train without the Wan-generated clip (default: with it where it is on this machine, "
                        "LAB_SHARED_ASSETS or ../shared/assets; without it elsewhere, said in the log)")
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu or cuda (bf16 autocast on cuda)")
    p.add_argument("--threads", type=threads_arg, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0, help="save the training state this often")
    p.add_argument("--export-to", help="export to this diffusers folder every --export-minutes and at the end "
                                       "(train); the destination folder (export; default data/checkpoints/MODEL)")
    p.add_argument("--export-minutes", type=float, default=10.0)
    p.add_argument("--eval-frames", type=positive_int, default=9,
                   help="held-out clip length for periodic exports; the final export uses 17")
    p.add_argument("--init-from", metavar="RUN_OR_FOLDER",
                   help="warm start a new run from the model weights of this run folder or exported diffusers "
                        "folder (optimizer, step and schedule start fresh; recorded in the card)")
    p.add_argument("--anchor-steps", type=int, default=0,
                   help="open with N steps on fixed block-mean latents, so the decoder learns to read its input "
                        "before the latents are free (needed by mini-ltx, which otherwise collapses to the average "
                        "clip; default 0)")
    p.add_argument("--freeze-encoder", action="store_true",
                   help="with --init-from: train the decoder only, so the latent space (and every decoder trained "
                        "on it) stays valid")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="stop after this many minutes of training (checkpointed, exported with --export-to); the "
                        "LR cosine then follows the clock (default 0: no limit)")
    p.add_argument("--stills", metavar="skimage|FILE.npz",
                   help="add still photographs as video (synthetic pan/zoom/roll): 'skimage' for scikit-image's "
                        "bundled photos, or a .npz of uint8 (H, W, 3) arrays")
    p.add_argument("--stills-fraction", type=float, default=0.25, help="share of each batch cut from the photos")
    p.add_argument("--data", action="append", metavar="SPEC",
                   help="train on this instead of the built-in clips: a folder, glob, video file or clip name "
                        "(repeat for more); folders and globs are streamed from disk")
    p.add_argument("--manifest", help="a CSV/JSONL manifest (path, start, stop, split) to train on; rows of other "
                                      "splits than 'train' are held out")
    p.add_argument("--workers", type=int, default=2, help="loader processes for a streamed dataset (default 2)")
    p.add_argument("--stop-at", type=int, help="stop (checkpointed) at this step, as if interrupted")
    p.add_argument("--overwrite", action="store_true",
                   help="export into a non-empty folder the lab did not export to (its other files are kept)")


def run(args):
    # deferred: torch, diffusers and the trainer load when the command runs, not for --help
    from lab.teachers.config import TrainConfig, get_preset
    from lab.teachers.export import export_run
    from lab.teachers.train import train

    apply_downloads_arg(args)
    model = args.model
    preset = get_preset(model)  # a clear error, listing the presets, for an unknown name
    run_dir = Path(args.run) if args.run else paths.REPO_ROOT / "runs" / "teachers" / model
    if args.export_to:  # a read-only folder or a name too long: said before the work
        check_writable(args.export_to, "--export-to")
    if args.action == "export":
        out = Path(args.export_to) if args.export_to else paths.checkpoints_dir() / model
        return _summary(export_run(run_dir, out, eval_frames=17, overwrite=args.overwrite), out)
    check_writable(run_dir, "--run")
    d = preset.defaults  # sized by the family for a CPU: the smallest windows that exercise the temporal path
    cfg = TrainConfig(model=model, steps=args.steps, batch=args.batch or d["batch"], frames=args.frames or d["frames"],
                      crop=args.crop or d["crop"], lr=args.lr, warmup=args.warmup, kl_weight=args.kl_weight,
                      perceptual_weight=args.perceptual_weight, seed=args.seed,
                      short_sides=tuple(int(s) for s in args.short_sides.split(",")), wan_clip=_wan_clip(args),
                      device=args.device, threads=args.threads, checkpoint_minutes=args.checkpoint_minutes,
                      export_minutes=args.export_minutes if args.export_to else 0.0, export_to=args.export_to,
                      eval_frames=args.eval_frames, init_from=args.init_from,
                      anchor_steps=args.anchor_steps, freeze_encoder=args.freeze_encoder,
                      max_minutes=args.max_minutes, stills=args.stills, stills_fraction=args.stills_fraction,
                      clips=args.data, manifest=args.manifest, workers=args.workers)
    command = shlex.join(["python", "-m", "lab"] + sys.argv[1:]) if sys.argv[1:2] == ["teacher"] else None
    result = train(cfg, run_dir, stop_at=args.stop_at, command=command, overwrite_export=args.overwrite)
    losses = result.pop("losses")
    result["first_loss"] = losses[0] if losses else None
    if args.export_to and result["stopped_by"] in ("steps", "time"):
        result["export"] = _summary(export_run(run_dir, Path(args.export_to), eval_frames=17, overwrite=True),
                                    Path(args.export_to))  # checked when training started
    return result


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
