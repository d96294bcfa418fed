"""python -m lab search: measure the candidate operators of each decoder stage on the target device and
pick, stage by stage, the fastest one that keeps the swapped decoder within a quality budget
(lab.ops.search.search_plan). Prints the chosen plan in the form ``prune --operators`` takes."""

from __future__ import annotations

import logging

from lab.cli import table
from lab.cli.common import (add_decoder_args, add_device_args, device_of, dtype_of, parse_size, positive_int,
                            threads_arg)
from lab.errors import LabError

HELP = "operator search: the fastest operator per stage within a quality budget (a plan for prune --operators)"
log = logging.getLogger("lab")


def add_arguments(p):
    add_decoder_args(p)
    add_device_args(p)
    p.add_argument("--frames", type=positive_int, default=9, help="output frames to decode (default 9)")
    p.add_argument("--size", type=parse_size, default=(64, 64), help="output HxW (default 64x64)")
    p.add_argument("--budget", type=float, default=30.0,
                   help="quality budget: least PSNR (dB) of the swapped decoder's output against the unswapped "
                        "decoder's on the same latents (default 30)")
    p.add_argument("--max-rel-err", type=float, default=None,
                   help="also bound the relative RMS error of the output (e.g. 0.1)")
    # The default is lab.ops.search.DEFAULT_CANDIDATES, read in run(): importing it here would load torch for
    # --help (tests/cli/test_cli_help.py keeps this text in step with it).
    p.add_argument("--candidates", default=None,
                   help="operators to try per stage (default keep,dwsep3d,conv2plus1d,conv2d)")
    p.add_argument("--stages", default=None, help="stages to search, e.g. up2,up3 (default: all but conv_in, head)")
    p.add_argument("--clip", default=None,
                   help="encode this clip with the decoder's own encoder for the latents (default: N(0,1) latents, "
                        "which need no encoder and suit timing with --weights random)")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed decodes per candidate; medians are used (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random latents")
    p.add_argument("--threads", type=threads_arg, default=0,
                   help="torch CPU threads (0: torch's default; 1 gives steadier timings on a shared CPU)")


def _latents(dec, args, device, dtype) -> tuple:
    import torch  # deferred: torch loads when the command runs, not for --help

    g = dec.geometry
    if args.clip:
        # deferred: loaded when --clip is given, not when build_parser imports every command
        from lab.analysis import calibration_latents
        from lab.models.pairing import latents_encoder
        # a student's latents are its teacher's: the teacher it records encodes the clip
        encoder = latents_encoder(dec, spec=args.decoder, weights=args.weights, device=device, dtype=dtype)
        z, names = calibration_latents(encoder, [args.clip], frames=args.frames, size=args.size)
        return z[0], names[0]
    t = g.latent_frames_for(args.frames)
    h, w = g.latent_size_for(*args.size)
    gen = torch.Generator().manual_seed(args.seed)
    z = torch.randn(1, g.channels, t, h, w, generator=gen).to(device=device, dtype=dtype)
    return z, f"randn {t}x{h}x{w}"


def run(args):
    if args.repeats < 1:
        raise LabError("--repeats must be at least 1.")
    if args.frames < 1:
        raise LabError("--frames must be at least 1.")
    # deferred: torch and the models load when the command runs, not for --help
    import torch

    from lab.models import load_decoder
    from lab.ops.search import DEFAULT_CANDIDATES, search_plan

    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = device_of(args.device), dtype_of(args.dtype)
    dec = load_decoder(args.decoder, weights=args.weights, device=device, dtype=dtype)
    if not hasattr(dec, "vae"):
        raise LabError(f"{dec.name} has no diffusers VAE inside, so it has no stages to swap; search a teacher or a "
                       f"student built from one.")
    z, source = _latents(dec, args, device, dtype)
    candidates = ([c.strip() for c in args.candidates.split(",") if c.strip()] if args.candidates is not None
                  else list(DEFAULT_CANDIDATES))
    if not candidates:
        raise LabError("--candidates is empty; name at least one operator (e.g. keep,dwsep3d,conv2d).")
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None
    log.info("search %s on %s: latents %s, budget %.1f dB", dec.name, device, tuple(z.shape), args.budget)
    result = search_plan(dec, z, candidates=candidates, stages=stages, max_rel_err=args.max_rel_err,
                         min_psnr_db=args.budget, repeats=args.repeats)
    swapped = {s: op for s, op in result["plan"].items() if op != "keep"}
    return {"decoder": dec.name, "device": str(device), "dtype": args.dtype, "latents": source,
            "latents_shape": list(z.shape), "budget_psnr_db": args.budget, **result,
            # The form prune --operators takes ("keep" when nothing beat the budget).
            "operators": ",".join(f"{s}={op}" for s, op in swapped.items()) or "keep"}


def render(result) -> str:
    rows = [{**r, "stage_ms": 1000 * r["stage_seconds"]} for r in result["trials"]]
    head = (f"{result['decoder']} on {result['device']} ({result['latents']}), budget >= "
            f"{result['budget_psnr_db']} dB vs the unswapped decoder")
    f = result["final"]
    tail = (f"\nchosen: {result['operators']}  (PSNR {f['psnr_db']:.2f} dB, params {f['params']} of "
            f"{f['teacher_params']})\nuse it: python -m lab prune ... --operators {result['operators']}")
    return head + "\n" + table(rows, ["stage", "operator", "stage_ms", "psnr_db", "rel_err", "accepted", "params"]) + tail
