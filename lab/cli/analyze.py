"""python -m lab analyze: stream calibration clips through a decoder with live hooks and report, per
stage and channel group, channel independence and the variance explained by the best k channels."""

from __future__ import annotations

import logging
from pathlib import Path

from lab.cli import table
from lab.cli.common import add_decoder_args, add_device_args, device_of, dtype_of, parse_size, positive_int
from lab.errors import LabError
from lab.files import atomic_write_json, check_writable

HELP = "channel-independence analysis of a decoder (live hooks, per-stage scores and explained variance)"
log = logging.getLogger("lab")


def add_arguments(p):
    add_decoder_args(p)
    add_device_args(p)
    p.add_argument("--clips", nargs="+", default=None,
                   help="calibration clips: bundled/sample names or video paths (default: every clip at hand "
                        "that is not held out, read at 128x128 unless --size: bbb-128, plus bigbuckbunny and "
                        "bikes' training frames after `python -m lab data fetch`; the same as prune's). A student's "
                        "clips are encoded by the teacher it records")
    p.add_argument("--frames", type=positive_int, default=9, help="frames per clip (default 9)")
    p.add_argument("--size", type=parse_size, default=None, help="resize/crop clips to HxW (default: as read)")
    p.add_argument("--random-latents", metavar="TxHxW", default=None,
                   help="analyse N(0,1) latents of this latent size instead of clips (e.g. 2x60x104 for "
                        "480x832 video); needs no encoder")
    p.add_argument("--matrices", action="store_true", help="include correlation matrices and full curves")
    p.add_argument("--out", help="also write the full report (with matrices) as JSON here")


def run(args):
    # deferred: torch and the models load when the command runs, not for --help
    import torch

    from lab.analysis import analyze, calibration_latents
    from lab.models import load_decoder
    from lab.models.pairing import latents_encoder

    if args.out:
        args.out = str(check_writable(args.out))  # said before the analysis; the path it checked is the one written
    device, dtype = device_of(args.device), dtype_of(args.dtype)
    dec = load_decoder(args.decoder, weights=args.weights, device=device, dtype=dtype)
    if args.random_latents:
        try:
            t, h, w = (int(x) for x in args.random_latents.lower().split("x"))
        except ValueError:
            raise LabError(f"--random-latents must look like TxHxW (e.g. 2x60x104), got '{args.random_latents}'") from None
        gen = torch.Generator().manual_seed(0)
        latents = [torch.randn(1, dec.geometry.channels, t, h, w, generator=gen).to(device=device, dtype=dtype)]
        names = [f"randn {t}x{h}x{w}"]
    else:
        # A student's latents are its teacher's: the teacher it records encodes the clips (lab.models.pairing).
        encoder = latents_encoder(dec, spec=args.decoder, weights=args.weights, device=device, dtype=dtype)
        latents, names = calibration_latents(encoder, args.clips, frames=args.frames, size=args.size)

    def progress(event):
        if event["event"] == "step":
            log.info("analyze: step %d/%d (%s) %.1fs", event["step"], event["steps_total"], event["clip"],
                     event["elapsed_s"])

    analysis = analyze(dec, latents, clip_names=names, subscribers=[progress])
    result = analysis.summary()
    if args.matrices or args.out:
        full = {"decoder": dec.name, "clips": names, "stages": analysis.stage_report(matrices=True),
                "groups": [g.describe() for g in analysis.groups]}
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(args.out, full, indent=None)  # an interrupted write never leaves half a JSON
            result["out"] = args.out
        if args.matrices:
            result["stages"] = full["stages"]
    return result


def render(result) -> str:
    cols = ["stage", "group", "width", "prunable", "independence_mean", "ev@0.5", "ev@0.25", "ev@0.125", "rank_99"]
    head = f"{result['decoder']} on {', '.join(map(str, result['clips']))} ({result['steps']} steps)\n"
    tail = f"\nfull report: {result['out']}" if result.get("out") else ""
    return head + table(result["groups"], cols) + tail
