"""Teacher vs operator-swapped decoder, measured in one process: whole-decode time (interleaved
repeats, medians) and per-stage time, plus the output error of the swap (init from the teacher,
no training) and parameter counts.

    python scripts/bench_swap.py --decoder wan2.1 --plan flash-vaed --frames 9 --size 64x64 --repeats 5 --threads 1
    (add --prune to also time issue 4's pruned + swapped student)

Random weights by default (latency does not depend on weight values); pass --weights for real ones.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from lab.cli.common import parse_size
from lab.models import load_decoder
from lab.ops.search import output_error, stage_seconds
from lab.ops.swap import swap_decoder


def _timed(decoder, z, sync) -> float:
    sync()
    t0 = time.perf_counter()
    decoder.decode(z)
    sync()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--decoder", default="wan2.1")
    p.add_argument("--weights", default="random")
    p.add_argument("--plan", default="flash-vaed")
    p.add_argument("--frames", type=int, default=9, help="output frames (1 + t*k)")
    p.add_argument("--size", type=parse_size, default=(64, 64))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no-stages", action="store_true", help="skip the per-stage timing")
    p.add_argument("--prune", action="store_true",
                   help="also time the pruned+swapped student (lab.prune, Flash-VAED widths; Wan teachers)")
    p.add_argument("--out", default=None, help="also write the JSON result here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)

    teacher = load_decoder(args.decoder, weights=args.weights, device=dev)
    g = teacher.geometry
    z = torch.randn(1, g.channels, g.latent_frames_for(args.frames), *g.latent_size_for(*args.size),
                    generator=torch.Generator().manual_seed(0)).to(dev)
    swapped, summary = swap_decoder(teacher, args.plan, calibration=z)
    models = {"teacher": teacher, "swapped": swapped}
    if args.prune:
        # Issue 4's pruning (lab.prune) on top: Flash-VAED widths, random channels and no fold, since
        # only latency is measured here (no calibration decode of the full-size teacher needed).
        from lab.prune import prune
        models["pruned_swapped"], _ = prune(teacher, "flash-vaed", criterion="random",
                                            fold=False, operators=args.plan)
    with torch.no_grad():
        ref = teacher.decode(z)  # also the warm-up
        errors = {k: output_error(m.decode(z), ref) for k, m in models.items() if k != "teacher"}
    times = {k: [] for k in models}
    names = list(models)
    for i in range(args.repeats):
        # Rotate which goes first so slow drift of a shared CPU hits all alike.
        for name in names[i % len(names):] + names[:i % len(names)]:
            times[name].append(_timed(models[name], z, sync))
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "decoder": args.decoder, "plan": summary["plan"], "device": str(dev), "threads": torch.get_num_threads(),
        "latents_shape": list(z.shape), "frames": g.frames_for(z.shape[2]), "size": list(args.size),
        "repeats": args.repeats,
        "models": {k: {"median_s": med[k], "runs_s": times[k], "speedup_vs_teacher": med["teacher"] / med[k],
                       "decoder_params": models[k].decoder_params(),
                       "output_error_vs_teacher": errors.get(k)} for k in models},
    }
    if not args.no_stages:
        per = {k: stage_seconds(m, z, args.repeats) for k, m in models.items()}
        result["stages"] = [{"stage": s, **{f"{k}_s": per[k][s] for k in models},
                             **{f"{k}_speedup": per["teacher"][s] / per[k][s] for k in models
                                if k != "teacher" and per[k][s] > 0}} for s in per["teacher"]]
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
