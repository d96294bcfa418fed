"""Channel analysis of the full-size Wan 2.1 decoder architecture (random weights: the memory and time
profile does not depend on the weights) at 480x832, on CPU. Reports peak resident memory and time,
to show the streaming Gram accumulation fits in CPU memory.

    python scripts/analyze_full_wan.py --latent-frames 2            # 480x832, 2 latent frames (5 video frames)
    python scripts/analyze_full_wan.py --size 64x64 --latent-frames 1   # quick
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import torch

from lab.analysis import analyze
from lab.models import load_decoder


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # ru_maxrss is KiB on Linux


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="480x832")
    p.add_argument("--latent-frames", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = (int(x) for x in args.size.split("x"))
    t0 = time.perf_counter()
    dec = load_decoder("wan2.1", weights="random")
    load_s = time.perf_counter() - t0
    rss_model = peak_rss_gib()
    z = torch.randn(1, 16, args.latent_frames, h // 8, w // 8, generator=torch.Generator().manual_seed(0))

    def progress(e):
        if e["event"] == "step":
            print(f"step {e['step']}/{e['steps_total']} {e['elapsed_s']:.1f}s peak {peak_rss_gib():.2f} GiB",
                  file=sys.stderr)

    t1 = time.perf_counter()
    analysis = analyze(dec, z, subscribers=[progress], clip_names=[f"randn {tuple(z.shape)}"])
    analyze_s = time.perf_counter() - t1
    gram_bytes = sum(st.gram.numel() * 8 if st.gram is not None else st.sumsq.numel() * 8
                     for st in analysis.stats.values())
    t2 = time.perf_counter()
    summary = analysis.summary()
    report_s = time.perf_counter() - t2
    result = {"decoder": "wan2.1 (random weights)", "video": [1 + 4 * (args.latent_frames - 1), h, w],
              "latents": list(z.shape), "decoder_params": dec.decoder_params(), "taps": len(analysis.stats),
              "gram_MiB": gram_bytes / 2 ** 20, "load_s": load_s, "analyze_s": analyze_s, "report_s": report_s,
              "peak_rss_GiB_after_load": rss_model, "peak_rss_GiB": peak_rss_gib(), "threads": torch.get_num_threads(),
              "groups": [{k: r[k] for k in ("group", "width", "independence_mean", "rank_99")} for r in summary["groups"]]}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
