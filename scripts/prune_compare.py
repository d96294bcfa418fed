"""Before any training: how well does each selection criterion's pruned student reproduce its
teacher on held-out clips? Prints PSNR (student vs teacher output, dB) per criterion and keep ratio.

    python scripts/prune_compare.py                        # mini-wan, calibrate on bbb-128, eval bikes+carphone
    python scripts/prune_compare.py --teacher wan2.1-tiny  # no trained weights needed (random teacher)
    python scripts/prune_compare.py --stages up2,up3 --json
    python scripts/prune_compare.py --teacher mini-ltx --ratios 0.5,0.25 --stages up2,up3
    python scripts/prune_compare.py --ridge 0 --seeds 5   # plain least-squares folds; 5 random subsets

The analysis (Grams) is computed once on the calibration clips and shared by every criterion, so
all students see the same statistics; only the channel choice differs (the least-squares fold is
applied to all of them, so the comparison isolates the selection).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from lab.analysis import analyze, calibration_latents
from lab.analysis.linalg import FOLD_RIDGE
from lab.cli import table
from lab.eval.metrics import PSNR
from lab.models import load_decoder
from lab.prune import prune


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="mini-wan")
    p.add_argument("--weights", default=None)
    p.add_argument("--calib", nargs="+", default=["bbb-128"], help="calibration clips, NAME or NAME@START_FRAME")
    p.add_argument("--calib-frames", type=int, default=None, help="frames per calibration clip (default: --frames)")
    p.add_argument("--eval", nargs="+", default=["carphone", "bikes@200"],
                   help="held-out clips, NAME or NAME@START_FRAME (mini-wan never saw carphone, nor bikes "
                        "from frame 200 on)")
    p.add_argument("--frames", type=int, default=9)
    p.add_argument("--size", default="128x128", help="HxW the clips are resized/cropped to")
    p.add_argument("--ratios", default="0.5,0.25,0.125")
    p.add_argument("--criteria", default="independence,magnitude,random",
                   help="comma-separated criteria; NAME+refine adds output-checked refinement to that one only")
    p.add_argument("--stages", default=None, help="prune only these stages (default: every prunable stage)")
    p.add_argument("--no-fold", action="store_true", help="slice only, no least-squares fold")
    p.add_argument("--ridge", type=float, default=FOLD_RIDGE,
                   help=f"fold regularisation relative to the kept channels' variance (default {FOLD_RIDGE})")
    p.add_argument("--fold-norms", action="store_true", help="Wan: folded RMS norms in narrowed groups (prune(fold_norms=True))")
    p.add_argument("--refine", type=int, default=0,
                   help="passes of output-checked refinement (prune(refine=N)) applied to every criterion")
    p.add_argument("--refine-swaps", type=int, default=0, help="single swaps tried per group and pass with --refine")
    p.add_argument("--seeds", type=int, default=3, help="random subsets per ratio for the 'random' criterion "
                                                        "(mean, min and max are reported; default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size = tuple(int(x) for x in args.size.split("x"))
    t0 = time.perf_counter()
    teacher = load_decoder(args.teacher, weights=args.weights)
    calib, calib_names = [], []
    for spec in args.calib:
        clip, _, start = spec.partition("@")
        z, _ = calibration_latents(teacher, [clip], frames=args.calib_frames or args.frames, size=size,
                                   start=int(start or 0))
        calib += z
        calib_names.append(spec)
    held, held_names = [], []
    for spec in args.eval:
        clip, _, start = spec.partition("@")
        z, _ = calibration_latents(teacher, [clip], frames=args.frames, size=size, start=int(start or 0))
        held += z
        held_names.append(spec)
    refs = [teacher.decode(z) for z in held]
    analysis = analyze(teacher, calib, clip_names=calib_names)
    stages = args.stages.split(",") if args.stages else None

    def score(keep, crit, seed=0):
        # "NAME+refine": that criterion with output-checked refinement (--refine passes, default 1)
        passes = (args.refine or 1) if crit.endswith("+refine") else args.refine
        student, info = prune(teacher, keep, crit.removesuffix("+refine"), analysis=analysis, fold=not args.no_fold, ridge=args.ridge,
                              fold_norms=args.fold_norms, latents=calib, refine_swaps=args.refine_swaps,
                              refine=passes,
                              seed=seed)
        m = PSNR()
        for z, ref in zip(held, refs):
            m.update(student.decode(z), ref)
        return m.compute(), info

    rows = []
    for r in (float(x) for x in args.ratios.split(",")):
        keep = {s: r for s in stages} if stages else r
        row = {"keep": r}
        for crit in args.criteria.split(","):
            if crit == "random":
                vals = [score(keep, crit, seed)[0] for seed in range(args.seeds)]
                row["random"] = round(sum(vals) / len(vals), 2)
                row["random_min"], row["random_max"] = round(min(vals), 2), round(max(vals), 2)
                continue
            val, info = score(keep, crit)
            row[crit] = round(val, 2)
            row["student_params"] = info["decoder_params"]
        rows.append(row)
        print(f"keep {r}: {row}", file=sys.stderr)
    result = {"teacher": args.teacher, "weights": args.weights or "default", "calibration": calib_names,
              "calib_frames": args.calib_frames or args.frames,
              "held_out": held_names, "size": list(size), "frames": args.frames,
              "stages": stages or "all prunable", "fold": not args.no_fold, "ridge": args.ridge,
              "fold_norms": args.fold_norms, "refine": args.refine,
              "random_seeds": args.seeds,
              "teacher_params": teacher.decoder_params(), "rows": rows, "seconds": time.perf_counter() - t0}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"PSNR (dB) of the pruned student vs {args.teacher} on held-out {', '.join(held_names)} "
              f"({args.frames} frames, {args.size}); calibrated on {', '.join(calib_names)}; "
              f"stages {result['stages']}; fold={result['fold']}, ridge={args.ridge}; random: mean of "
              f"{args.seeds} seeds")
        extra = ["random_min", "random_max"] if "random" in args.criteria.split(",") else []
        print(table(rows, ["keep", *args.criteria.split(","), *extra, "student_params"]))
    return result


if __name__ == "__main__":
    main()
