"""Benchmark of the streamed data loader and the latent cache (issue #22). Not a test: it prints numbers.

    python scripts/bench_data_loader.py                  # everything, ~10 min on 2 busy CPU cores
    python scripts/bench_data_loader.py --skip-cache     # the loader only
    python scripts/bench_data_loader.py --json out.json  # also write the numbers as JSON

1. Writes ``--files`` (default 200) small mp4 files (33 frames, short side 288) cut from the sample clips
   (``python -m lab data fetch`` puts them in data/samples/; the bundled clip is in data/clips/) into
   ``--work`` (default runs/bench-data); files already there are reused.
2. Loader throughput in windows/s for 17x256x256 windows (batch 4) with 0, 1 and 2 workers.
3. Peak RSS as the folder grows from 20 to 200 files: the streamed loader against the in-memory
   ClipWindows (each measured in a fresh process; workers' RSS included).
4. The latent cache with the mini-wan teacher: encode throughput, then distillation step time reading the
   cache against streaming the same folder and encoding every batch.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_dataset(folder: Path, n: int, frames: int = 33, short: int = 288) -> list[Path]:
    """``n`` mp4 files of ``frames`` frames, short side ``short``, cut from the sample clips in turn."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from lab.data.samples import bundled_clip, sample_clip
    from lab.data.video import read_frames, write_video

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"clip-{i:04d}.mp4" for i in range(n)]
    if all(p.exists() for p in paths):
        return paths
    sources = []
    for name in ("bikes", "bigbuckbunny", "carphone"):
        try:
            sources.append(read_frames(sample_clip(name)))
        except Exception as exc:  # noqa: BLE001  (a missing sample: use the others)
            print(f"sample clip {name} unavailable ({exc}); using the others", file=sys.stderr)
    sources.append(read_frames(bundled_clip()))
    scaled = []
    for clip in sources:  # short side to `short` (up or down), so every file fits a 256 crop
        t, h, w, _ = clip.shape
        s = short / min(h, w)
        out = []
        for i in range(0, t, 16):
            x = torch.from_numpy(clip[i:i + 16]).permute(0, 3, 1, 2).float()
            x = F.interpolate(x, size=(round(h * s) // 2 * 2, round(w * s) // 2 * 2), mode="bilinear",
                              antialias=s < 1, align_corners=False)
            out.append(x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
        scaled.append(np.concatenate(out))
    for i, p in enumerate(paths):
        if p.exists():
            continue
        clip = scaled[i % len(scaled)]
        start = (i // len(scaled) * 7) % max(1, clip.shape[0] - frames)
        write_video(p, clip[start:start + frames], fps=24, crf=23)
    return paths


def throughput(folder: Path, workers: int, steps: int, batch: int = 4) -> dict:
    from lab.data.dataset import resolve_spec
    from lab.data.stream import StreamWindows
    data = StreamWindows(resolve_spec([str(folder)]), short_sides=(256,), seed=0, workers=workers)
    t0 = time.perf_counter()
    data.sample_uint8(batch, 17, 256, step=0)  # the first batch pays for starting the workers
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in range(1, steps + 1):
        data.sample_uint8(batch, 17, 256, step=s)
    dt = time.perf_counter() - t0
    data.close()
    return {"workers": workers, "windows_per_s": round(steps * batch / dt, 2), "first_batch_s": round(first, 2),
            "batches": steps, "batch": batch}


def rss_child(mode: str, folder: Path, n: int) -> None:
    """Run in a fresh process: build the loader over the first ``n`` files, draw 8 batches, print peak RSS."""
    import torch
    torch.set_num_threads(1)
    from lab.data.clips import ClipSpec, ClipWindows
    from lab.data.dataset import resolve_spec
    from lab.data.stream import StreamWindows
    entries = resolve_spec([str(folder)])[:n]
    t0 = time.perf_counter()
    if mode == "memory":
        data = ClipWindows([ClipSpec(e.path, e.path) for e in entries], short_sides=(256,))
        for s in range(8):
            data.sample(4, 17, 256, torch.Generator().manual_seed(s))
    else:
        data = StreamWindows(entries, short_sides=(256,), seed=0, workers=2)
        for s in range(8):
            data.sample_uint8(4, 17, 256, step=s)
        data.close()
    mine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "files": n, "peak_rss_mb": round(mine, 1), "worker_peak_rss_mb": round(kids, 1),
                      "seconds": round(time.perf_counter() - t0, 1)}))


def rss(folder: Path, counts) -> list[dict]:
    rows = []
    for mode in ("stream", "memory"):
        for n in counts:
            out = subprocess.run([sys.executable, __file__, "--rss-child", mode, str(n), "--work", str(folder.parent)],
                                 capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            if out.returncode:
                rows.append({"mode": mode, "files": n, "error": out.stderr.strip().splitlines()[-1]})
            else:
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], file=sys.stderr)
    return rows


def distill_config(data: dict, steps: int, frames: int, size: int) -> dict:
    """A few pixel-loss steps of a TAE-64 student against the mini-wan teacher (one torch thread)."""
    return {"teacher": "mini-wan", "threads": 1, "seed": 0, "eval_every": 1000, "checkpoint_every": 0,
            "sample_every": 0, "student": {"folder": "tae-64-wan", "weights": "random"},
            "data": {"frames": frames, "crop": size, "batch": 1, "short_sides": [size], "val_clips": ["bigbuckbunny"],
                     "val_frames": 5, "val_size": 32, **data},
            "ema": {"enabled": False},
            "phases": [{"name": "train", "losses": {"pixel_teacher_l1": 1.0, "pixel_real_l1": 0.5},
                        "max_steps": steps, "plateau": {"enabled": False}}]}


def step_times(out: Path) -> list[float]:
    from lab.runs.store import RunReader
    with RunReader(out) as r:
        return [v for _, v in r.scalars()["perf/step_s"]]


def data_cost(folder: Path, cache: Path, frames: int, size: int, steps: int = 6) -> dict:
    """Seconds per step of getting (window, teacher latents): streamed + encoded, or read from the cache."""
    from types import SimpleNamespace

    from lab.distill.data import training_batches
    from lab.models import load_decoder
    teacher = load_decoder("mini-wan").eval()
    out = {}
    for name, cache_dir in (("streamed+encode", None), ("cache", str(cache))):
        data = SimpleNamespace(clips=[str(folder)], manifest=None, cache=cache_dir, workers=0, short_sides=[size],
                               frames=frames, crop=size)
        batches = training_batches(teacher, data, teacher_name="mini-wan", seed=0)
        batches.sample(1, frames, size, None, step=0)
        t0 = time.perf_counter()
        for s in range(1, steps + 1):
            batches.sample(1, frames, size, None, step=s)
        out[name] = round((time.perf_counter() - t0) / steps, 4)
    return out


def cache_bench(folder: Path, work: Path, *, frames: int, size: int, per_file: int, files: int, steps: int) -> dict:
    import torch
    torch.set_num_threads(1)
    from lab.data.cache import encode_cache
    from lab.distill import distill
    sub = work / f"cache-src-{files}"  # the first `files` files, as a folder spec of their own
    sub.mkdir(exist_ok=True)
    for p in sorted(folder.glob("*.mp4"))[:files]:
        if not (sub / p.name).exists():
            os.link(p, sub / p.name)
    cache = work / f"cache-{frames}x{size}"
    shutil.rmtree(cache, ignore_errors=True)
    enc = encode_cache("mini-wan", [str(sub)], out=cache, frames=frames, size=size, per_file=per_file,
                       shard_windows=32, batch=4)
    res = {"encode": enc, "window": f"{frames}x{size}x{size}", "data_per_step": data_cost(sub, cache, frames, size)}
    print(res["data_per_step"], file=sys.stderr)
    for name, data in (("streamed+encode", {"clips": [str(sub)], "workers": 2}), ("cache", {"cache": str(cache)})):
        out = work / f"run-{name}"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        distill(distill_config(data, steps, frames, size), out)
        times = step_times(out)[1:]  # the first step pays for starting the loader
        res[name] = {"median_step_s": round(statistics.median(times), 3), "steps": len(times),
                     "run_s": round(time.perf_counter() - t0, 1)}
        print(name, res[name], file=sys.stderr)
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default=str(REPO / "runs" / "bench-data"))
    p.add_argument("--files", type=int, default=200)
    p.add_argument("--steps", type=int, default=12, help="batches timed per worker count")
    p.add_argument("--rss-counts", default="20,50,100,200")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-rss", action="store_true")
    p.add_argument("--skip-cache", action="store_true")
    p.add_argument("--cache-frames", type=int, default=17)
    p.add_argument("--cache-size", type=int, default=64, help="cache window size (mini-wan on a CPU: 64)")
    p.add_argument("--cache-files", type=int, default=40)
    p.add_argument("--train-steps", type=int, default=6)
    p.add_argument("--json", help="write the results here too")
    p.add_argument("--rss-child", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    work = Path(args.work)
    folder = work / "videos"
    if args.rss_child:
        return rss_child(args.rss_child[0], folder, int(args.rss_child[1]))
    import torch
    t0 = time.perf_counter()
    paths = make_dataset(folder, args.files)
    results = {"files": len(paths), "dataset_s": round(time.perf_counter() - t0, 1), "cpus": os.cpu_count(),
               "torch": torch.__version__,
               "dataset_mb": round(sum(p.stat().st_size for p in paths) / 2**20, 1)}
    print(results, file=sys.stderr)
    if not args.skip_throughput:
        results["throughput"] = [throughput(folder, w, args.steps) for w in (0, 1, 2)]
        print(results["throughput"], file=sys.stderr)
    if not args.skip_rss:
        results["rss"] = rss(folder, [int(c) for c in args.rss_counts.split(",")])
    if not args.skip_cache:
        results["cache"] = cache_bench(folder, work, frames=args.cache_frames, size=args.cache_size, per_file=1,
                                       files=args.cache_files, steps=args.train_steps)
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
