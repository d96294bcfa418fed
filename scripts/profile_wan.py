"""Reproduce the shape of Flash-VAED's Wan 2.1 profile table (METHOD.md 1.1) on the real full-size
architecture (random weights: latency and MACs do not depend on weight values), and optionally the
same profile after the Flash-VAED operator swap.

    python scripts/profile_wan.py --frames 9 --size 128x128 --out profile_wan.json [--plan flash-vaed]
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from lab.cli.common import parse_size
from lab.cli.profile import render
from lab.models import load_decoder
from lab.ops.profiler import profile_decoder
from lab.ops.swap import swap_decoder


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--decoder", default="wan2.1")
    p.add_argument("--frames", type=int, default=9, help="output frames (1 + 4k)")
    p.add_argument("--size", type=parse_size, default=(128, 128))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    p.add_argument("--plan", default=None, help="also profile the decoder swapped by this plan")
    p.add_argument("--out", default=None, help="write the JSON result(s) here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dec = load_decoder(args.decoder, weights="random", device=args.device)
    g = dec.geometry
    lt, ls = g.latent_frames_for(args.frames), g.latent_size_for(*args.size)
    results = {"teacher": profile_decoder(dec, lt, ls, repeats=args.repeats)}
    print(render(results["teacher"]), flush=True)
    if args.plan:
        swapped, summary = swap_decoder(dec, args.plan, copy_model=False)
        results["swapped"] = profile_decoder(swapped, lt, ls, repeats=args.repeats)
        results["swapped"]["plan"] = summary["plan"]
        print(render(results["swapped"]), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
