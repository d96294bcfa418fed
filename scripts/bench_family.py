"""CPU decode speed of a VAE family's Flash-VAED student against its full-size teacher, random weights
(speed does not depend on them), one process, interleaved repeats after a warm-up, medians.

The teacher is the catalog entry named by --family (e.g. wan2.2, ltx-2, wan2.1, ltx-video) at its real
config; the students are built from it by the lab's own recipe with cheap settings (criterion 'random',
no fold, so no analysis pass at full size): 'pruned' (the family's Flash-VAED widths) and 'flash-vaed'
(those widths plus the family's flash-vaed operator plan, where the family has one).

    python scripts/bench_family.py --family wan2.2 --size 64x64 --latent-frames 2 --repeats 3
    python scripts/bench_family.py --family ltx-2 --out docs/results/family-ltx-2.md

Prints a Markdown table (and --json for a machine-readable dict); --out also writes it to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from lab.models import load_decoder  # noqa: E402
from lab.prune import prune  # noqa: E402
from lab.runtime.timing import timed  # noqa: E402


def build(family: str, variants: list[str], seed: int) -> dict:
    teacher = load_decoder(family, weights="random").eval()
    decoders = {"teacher": teacher}
    plans = teacher.arch.plans
    for v in variants:
        ops = None
        if v == "flash-vaed":
            if "flash-vaed" not in plans:
                continue
            ops = "flash-vaed"
        decoders[v], _ = prune(teacher, "flash-vaed", "random", fold=False, operators=ops, name=f"{family}-{v}",
                               seed=seed)
    return decoders


def bench(decoders: dict, z: torch.Tensor, repeats: int, macs: bool = False) -> dict:
    times = {k: [] for k in decoders}
    shapes = {}
    for k, d in decoders.items():  # warm-up (allocator, kernel choice) and the output shape
        shapes[k] = list(d.decode(z).shape)
    counted = {}
    if macs:  # one more (untimed) decode each, under torch's FLOP counter (lab.eval.bench.count_macs)
        from lab.eval.bench import count_macs
        counted = {k: int(count_macs(d, z)) for k, d in decoders.items()}
    for _ in range(repeats):  # interleaved: every decoder sees the same load drift
        for k, d in decoders.items():
            times[k].append(timed(d.decode, z))
    # paired_speedup: teacher / decoder within each round (a round's decodes share its load), median over rounds
    return {k: {"median_s": statistics.median(ts), "times_s": ts, "output": shapes[k],
                "paired_speedup": statistics.median(a / b for a, b in zip(times["teacher"], ts)),
                "decoder_params": decoders[k].decoder_params(), **({"macs": counted[k]} if k in counted else {})}
            for k, ts in times.items()}


def markdown(res: dict) -> str:
    t = res["results"]["teacher"]
    lines = ["| decoder | decoder params | median decode (s) | speedup vs teacher | per-round speedup, median |",
             "|---|---:|---:|---:|---:|"]
    for k, r in res["results"].items():
        lines.append(f"| {k} | {r['decoder_params'] / 1e6:.2f}M ({r['decoder_params']:,}) | {r['median_s']:.3f} | "
                     f"{t['median_s'] / r['median_s']:.2f}x | {r['paired_speedup']:.2f}x |")
    e = res["env"]
    lines += ["", f"Latents {res['latents']} (normalized, N(0,1)) -> video {t['output']}; {res['repeats']} interleaved "
                  f"repeats after one warm-up per decoder, medians; {e['threads']} torch threads; torch {e['torch']}; "
                  f"{e['machine']}; load average before the run {e['loadavg']}; {e['when']}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", required=True, help="teacher catalog name: wan2.2, ltx-2, wan2.1, ltx-video, ...")
    ap.add_argument("--size", default="64x64", help="output HxW in pixels (multiples of the spatial compression)")
    ap.add_argument("--latent-frames", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default="pruned,flash-vaed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--macs", action="store_true", help="also count each decoder's MACs (one more decode each)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", help="also write the Markdown table to this file")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    decoders = build(args.family, [v for v in args.variants.split(",") if v], args.seed)
    build_s = time.perf_counter() - t0
    g = decoders["teacher"].geometry
    h, w = (int(x) for x in args.size.lower().split("x"))
    lh, lw = g.latent_size_for(h, w)
    z = torch.randn(1, g.channels, args.latent_frames, lh, lw, generator=torch.Generator().manual_seed(args.seed))
    env = {"threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.processor() or
           platform.machine(), "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
           "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    res = {"family": args.family, "latents": list(z.shape), "repeats": args.repeats, "build_s": build_s, "env": env,
           "results": bench(decoders, z, args.repeats, macs=args.macs)}
    table = markdown(res)
    if args.out:
        Path(args.out).write_text(table)
    print(json.dumps(res, indent=2) if args.json else table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
