"""python -m lab profile: where a decoder's time and MACs go, per stage and operator type."""

import logging

from lab.cli import table
from lab.cli.common import (add_decoder_args, add_device_args, device_of, dtype_of, parse_size, positive_int,
                            threads_arg)
from lab.errors import LabError

HELP = "per-stage latency and MAC shares of a decoder, and the operator types inside each stage"
log = logging.getLogger("lab")


def add_arguments(p):
    add_decoder_args(p)
    add_device_args(p)
    p.add_argument("--frames", type=positive_int, default=9, help="output frames to decode (1 + t*k, e.g. 9 for Wan; default 9)")
    p.add_argument("--size", type=parse_size, default=(128, 128), help="output HxW (default 128x128)")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed decodes; medians are reported (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="decodes before timing (the MAC count is the first; default 1)")
    p.add_argument("--plan", default=None,
                   help="profile the decoder after an operator swap: a plan name (flash-vaed) or STAGE=OP,...")
    p.add_argument("--figure", default=None, help="also write a plotly HTML figure of the profile here")
    p.add_argument("--threads", type=threads_arg, default=0,
                   help="torch CPU threads (0: torch's default; 1 gives steadier timings on a shared CPU)")


def run(args):
    # deferred: torch and the models load when the command runs, not for --help
    import torch

    from lab.arch import decoder_stages
    from lab.models import load_decoder
    from lab.ops.figures import profile_figure
    from lab.ops.profiler import profile_decoder
    from lab.ops.swap import swap_decoder

    if args.repeats < 1 or args.warmup < 1:
        raise LabError("--repeats and --warmup must be at least 1.")
    if args.threads:
        torch.set_num_threads(args.threads)
    dec = load_decoder(args.decoder, weights=args.weights, device=device_of(args.device), dtype=dtype_of(args.dtype))
    decoder_stages(dec)  # a clear error for a decoder without a stage map, before any work
    g = dec.geometry
    latent_frames = g.latent_frames_for(args.frames)
    latent_size = g.latent_size_for(*args.size)
    summary = None
    if args.plan:
        dec, summary = swap_decoder(dec, args.plan, copy_model=False)
    log.info("profiling %s: %d latent frames at %dx%d latent size on %s", dec.name, latent_frames, *latent_size,
             args.device)
    result = profile_decoder(dec, latent_frames, latent_size, repeats=args.repeats, warmup=args.warmup)
    if summary is not None:
        result["plan"] = summary["plan"]
    if args.figure:
        profile_figure(result).write_html(args.figure)
        result["figure"] = args.figure
    return result


def render(result):
    rows = []
    for s in result["stages"]:
        conv = sum(o["latency_share_in_stage"] for o in s["ops"] if o["type"] in ("causal_conv3d", "conv3d"))
        swapped = sum(o["latency_share_in_stage"] for o in s["ops"] if o["type"].startswith("op:"))
        top = max(s["ops"], key=lambda o: o["seconds"])["type"] if s["ops"] else ""
        rows.append({"stage": s["stage"], "ms": 1000 * s["seconds"], "latency %": 100 * s["latency_share"],
                     "MAC %": 100 * s["mac_share"], "conv3d % in stage": 100 * conv,
                     "swapped op % in stage": 100 * swapped, "top op": top,
                     "params": s["params"]})
    head = (f"{result['decoder']} on {result['device']} ({result['dtype']}): latents {result['latents_shape']} -> "
            f"video {result['video_shape']}; {result['total_s']:.3f} s/decode (median of {result['repeats']}), "
            f"{result['total_macs'] / 1e9:.1f} GMACs")
    return head + "\n" + table(rows, ["stage", "ms", "latency %", "MAC %", "conv3d % in stage",
                                      "swapped op % in stage", "top op", "params"])
