"""Tiled vs untiled decoding of a lab student through its diffusers facade (``pipe.vae.enable_tiling()``):
peak memory, time and the seam error, on CPU.

    python scripts/bench_vae_tiling.py                          # mini-wan-flash, 5 frames at 384x384
    python scripts/bench_vae_tiling.py --student prune          # a fresh Flash-VAED prune of mini-wan
    python scripts/bench_vae_tiling.py --size 512x512 --tile 256 --stride 192 --teacher-seams

What is measured, and how:
- latents: the teacher's encode (mode) of the bundled clip resized to --size, so the decoded content is real;
- peak memory: the growth of the process's resident-set high-water mark (Linux VmHWM) during one decode,
  from the resident size just before it. Each measurement runs in a fresh Python process (the allocator
  keeps freed memory, so a second decode in one process would read low); it loads the model, runs a small
  warm-up decode, resets the high-water mark (/proc/self/clear_refs) and decodes once. Medians over
  --mem-repeats processes. This is what the decode adds to the process (activations, tiles, output), as
  the OS sees it; it is not a count of torch's allocations;
- time: in this process, one warm-up decode per mode, then --repeats interleaved decodes; medians;
- seam error: PSNR (peak-to-peak 2, video in [-1, 1]) of the tiled decode against the untiled one, and with
  --teacher-seams the same for the teacher's own AutoencoderKLWan tiling (diffusers' code) at the same tiles,
  so the student's seams can be told apart from what tiling costs any decoder.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a file from anywhere, like the other scripts

KEEP_FLASH_VAED_WAN = {"up2": 0.125, "up3": 0.125}  # the Flash-VAED widths for Wan (lab.prune's flash-vaed plan)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}; this benchmark measures memory on Linux only")


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


def _facade(folder: str, tiled: bool, tile: int, stride: int):
    from lab.models.diffusers_compat import load_diffusers_vae
    vae = load_diffusers_vae(folder)
    if tiled:
        vae.enable_tiling(tile_sample_min_height=tile, tile_sample_min_width=tile, tile_sample_stride_height=stride,
                          tile_sample_stride_width=stride)
    return vae


def measure_memory(args) -> None:
    """Child process: one decode, its resident-memory growth on stdout (JSON)."""
    torch.set_num_threads(args.threads)
    vae = _facade(args.folder, args.measure == "tiled", args.tile, args.stride)
    z = torch.load(args.latents)
    vae.decode(z[:, :, :1, :8, :8])  # warm-up: thread pools and kernel caches, at a size that adds little
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident size
    before = _status_kib("VmRSS")
    out = vae.decode(z).sample
    peak = _status_kib("VmHWM")
    print(json.dumps({"peak_growth_MiB": (peak - before) / 1024, "rss_before_MiB": before / 1024,
                      "output_MiB": out.numel() * out.element_size() / 2 ** 20}))


def _memory_runs(args, folder: str, latents: str, mode: str) -> list[dict]:
    runs = []
    for _ in range(args.mem_repeats):
        cmd = [sys.executable, __file__, "--measure", mode, "--folder", folder, "--latents", latents,
               "--tile", str(args.tile), "--stride", str(args.stride), "--threads", str(args.threads)]
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if res.returncode:
            raise SystemExit(f"memory measurement ({mode}) failed:\n{res.stderr[-2000:]}")
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return runs


def _student(spec: str):
    from lab.models import load_decoder
    if spec != "prune":
        return load_decoder(spec)
    from lab.prune import prune
    teacher = load_decoder("mini-wan")
    student, _ = prune(teacher, KEEP_FLASH_VAED_WAN, "independence", frames=9, size=(64, 64),
                       operators="flash-vaed", name="mini-wan-pruned")
    return student


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--student", default="mini-wan-flash",
                   help="a lab decoder name or folder of the Wan family, or 'prune' (Flash-VAED prune of mini-wan)")
    p.add_argument("--size", default="384x384", help="HxW of the video (tiling triggers above --tile)")
    p.add_argument("--frames", type=int, default=5)
    p.add_argument("--tile", type=int, default=256, help="tile_sample_min_height/width (AutoencoderKLWan: 256)")
    p.add_argument("--stride", type=int, default=192, help="tile_sample_stride_height/width (AutoencoderKLWan: 192)")
    p.add_argument("--repeats", type=int, default=3, help="timed decodes per mode, after one warm-up")
    p.add_argument("--mem-repeats", type=int, default=3, help="fresh processes per mode for peak memory")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--teacher-seams", action="store_true", help="also measure the teacher's own tiling seams")
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    # internal: the memory child process
    p.add_argument("--measure", choices=["untiled", "tiled"], help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    p.add_argument("--latents", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure:
        measure_memory(args)
        return {}
    torch.set_num_threads(args.threads)
    h, w = (int(x) for x in args.size.lower().split("x"))

    from lab.data.samples import bundled_clip
    from lab.data.video import load_clip
    from lab.models import load_decoder
    from lab.models.diffusers_compat import as_diffusers_vae

    student = _student(args.student)
    if student.geometry.spatial != 8:
        raise SystemExit(f"{student.name} is not a Wan-family decoder; this benchmark tiles Wan students")
    teacher = load_decoder(student.teacher_name or "mini-wan")
    clip = load_clip(bundled_clip(), frames=args.frames, size=(h, w))
    with torch.no_grad():
        raw = teacher.vae.encode(clip).latent_dist.mode()  # raw latents, what a pipeline passes to vae.decode

    vae = as_diffusers_vae(student)
    if max(h, w) <= args.tile:
        raise SystemExit(f"a {h}x{w} video fits in one {args.tile}-pixel tile: tiling would not trigger")
    tiling = dict(tile_sample_min_height=args.tile, tile_sample_min_width=args.tile,
                  tile_sample_stride_height=args.stride, tile_sample_stride_width=args.stride)

    def decode(tiled: bool) -> torch.Tensor:
        vae.enable_tiling(**tiling) if tiled else vae.disable_tiling()
        return vae.decode(raw).sample

    outputs = {m: decode(m == "tiled") for m in ("untiled", "tiled")}  # warm-up, and the seam measurement
    times = {"untiled": [], "tiled": []}
    for _ in range(args.repeats):
        for mode in times:
            t0 = time.perf_counter()
            decode(mode == "tiled")
            times[mode].append(time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as tmp:
        folder, latents = str(Path(tmp) / "student"), str(Path(tmp) / "latents.pt")
        student.save(folder)
        torch.save(raw, latents)
        memory = {m: _memory_runs(args, folder, latents, m) for m in ("untiled", "tiled")}

    mem = {m: statistics.median(r["peak_growth_MiB"] for r in runs) for m, runs in memory.items()}
    step = args.stride // 8  # latent stride
    result = {
        "student": student.name, "teacher": teacher.name, "decoder_params": student.decoder_params(),
        "video": [1, 3, clip.shape[2], h, w], "latents": list(raw.shape), "threads": args.threads,
        "tiles": {"min": args.tile, "stride": args.stride,
                  "count": len(range(0, raw.shape[3], step)) * len(range(0, raw.shape[4], step))},
        "output_MiB": memory["untiled"][0]["output_MiB"],
        "peak_growth_MiB": mem, "peak_growth_runs_MiB": {m: [r["peak_growth_MiB"] for r in runs]
                                                         for m, runs in memory.items()},
        "peak_reduction": 1 - mem["tiled"] / mem["untiled"],
        "seconds_median": {m: statistics.median(t) for m, t in times.items()},
        "seconds_runs": times,
        "seam_psnr_db": psnr(outputs["tiled"], outputs["untiled"]),
        "student_vs_teacher_psnr_db": None,
    }
    with torch.no_grad():
        ref = teacher.decode(teacher.normalize(raw))
        result["student_vs_teacher_psnr_db"] = psnr(outputs["untiled"], ref)
        if args.teacher_seams:
            teacher.vae.enable_tiling(**tiling)
            try:
                result["teacher_seam_psnr_db"] = psnr(teacher.vae.decode(raw).sample, ref)
            finally:
                teacher.vae.disable_tiling()
    print(json.dumps(result, indent=2))
    if args.json:
        return result
    print(f"\n{student.name} ({result['decoder_params']:,} decoder params), {clip.shape[2]} frames at {h}x{w}, "
          f"{result['tiles']['count']} tiles of {args.tile}px at stride {args.stride}, {args.threads} threads:")
    print(f"  peak resident growth  untiled {mem['untiled']:.1f} MiB  tiled {mem['tiled']:.1f} MiB  "
          f"-> {100 * result['peak_reduction']:.0f}% less (medians of {args.mem_repeats} fresh processes; "
          f"output alone {result['output_MiB']:.1f} MiB)")
    print(f"  time                  untiled {result['seconds_median']['untiled']:.2f} s  tiled "
          f"{result['seconds_median']['tiled']:.2f} s (medians of {args.repeats}, after a warm-up)")
    seams = f"  seam error            tiled vs untiled PSNR {result['seam_psnr_db']:.1f} dB"
    if args.teacher_seams:
        seams += f" (the teacher's own tiling: {result['teacher_seam_psnr_db']:.1f} dB)"
    print(seams + f"; student vs teacher (untiled) {result['student_vs_teacher_psnr_db']:.1f} dB")
    return result


if __name__ == "__main__":
    main()
