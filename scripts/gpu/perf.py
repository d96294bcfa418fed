"""The perf phase of the device run: a kernel profile of each decoder, summarised into one JSON.

For each decoder spec (names and ``@runtime`` suffixes as in ``lab bench``; students built from config,
e.g. ``wan2.1-flash``: speed does not depend on which channels are kept, so no analysis), on random
latents of the real shape:

- one untimed decode (warm-up: cuDNN autotuning, Triton JIT, the allocator), then ``repeats`` timed
  decodes (synchronised; the median is ``wall_s``), then one decode under torch.profiler;
- from the profile: summed kernel time, GPU-busy share (the union of kernel intervals over the profiled
  decode's wall time), kernel launch count, the top kernels by device time and the top aten ops by self
  device time with their input shapes; where CUPTI gives no kernels (``kernels: 0``), per-stage timings
  from lab.ops.profiler instead, and the JSON says so;
- for a runtime spec whose plain decoder is in the list: max abs error and PSNR of its output against
  the plain decoder's on the same latents (what "the same output" means, measured in the same run);
- the fused runtime's Triton kernel status (which ran, which fell back to their reference and why).

Writes ``--out/profile.json`` after every decoder (a timeout keeps what was done). On a CPU
(``--device cpu``) the same runs at the shapes given, for the dry run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from lab import jsonio  # noqa: E402
from lab.devices import DTYPES  # noqa: E402
from lab.eval.bench import cuda_bench_flags, load_for_bench, random_latents  # noqa: E402
from lab.runtime.fused import triton_kernels  # noqa: E402
from lab.runtime.spec import runtime_note, split_runtime  # noqa: E402
from lab.runtime.timing import synchronize, timed, video_error  # noqa: E402


def _intervals_union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def summarise(prof, wall_s: float, top: int) -> dict:
    """Kernel and op figures of one profiled decode."""
    from torch.autograd import DeviceType
    events = prof.events()
    kernels = [e for e in events if e.device_type == DeviceType.CUDA]
    spans = [(e.time_range.start, e.time_range.end) for e in kernels]
    kernel_us = sum(b - a for a, b in spans)
    by_kernel: dict[str, list[float]] = {}
    for e in kernels:
        row = by_kernel.setdefault(e.name, [0, 0.0])
        row[0] += 1
        row[1] += e.time_range.end - e.time_range.start
    top_kernels = sorted(by_kernel.items(), key=lambda kv: -kv[1][1])[:top]
    ops = [a for a in prof.key_averages(group_by_input_shape=True) if a.key.startswith(("aten::", "lab::"))]
    # by self device time on a GPU (older torch: self_cuda_time_total); by self CPU time where there are no kernels
    key = "self_cpu_time_total" if not kernels else \
        "self_device_time_total" if hasattr(ops[0] if ops else None, "self_device_time_total") else "self_cuda_time_total"
    top_ops = sorted(ops, key=lambda a: -getattr(a, key, 0.0))[:top]
    return {
        "kernels": len(kernels),
        "kernel_s": kernel_us / 1e6,
        "gpu_busy_share": (_intervals_union(spans) / 1e6) / wall_s if wall_s > 0 and spans else 0.0,
        "top_kernels": [{"name": n[:160], "calls": c, "device_s": us / 1e6} for n, (c, us) in top_kernels],
        "top_ops_by": key,
        "top_ops": [{"op": a.key, "calls": a.count, "self_s": getattr(a, key, 0.0) / 1e6,
                     "input_shapes": str(a.input_shapes)[:200]} for a in top_ops],
    }


def profile_one(spec: str, weights: str, device: torch.device, dtype: torch.dtype, frames: int, size, repeats: int,
                top: int, reference_out: torch.Tensor | None) -> tuple[dict, torch.Tensor]:
    dec = load_for_bench(spec, weights, device, dtype)
    z = random_latents(dec, frames, size)
    row: dict = {"decoder": spec, "decoder_params": dec.decoder_params(), "latents_shape": list(z.shape),
                 "frames": dec.geometry.frames_for(z.shape[2]), "note": runtime_note(dec, split_runtime(spec)[1])}
    t0 = time.perf_counter()
    out = dec.decode(z)  # warm-up: autotuning, JIT, allocator
    synchronize(device)
    row["first_decode_s"] = time.perf_counter() - t0
    times = [timed(dec.decode, z) for _ in range(repeats)]
    row["wall_s"] = statistics.median(times)
    row["fps"] = row["frames"] / row["wall_s"]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        dec.decode(z)
        synchronize(device)
        row["decode_mem_bytes"] = int(torch.cuda.max_memory_allocated(device) - before)
    if reference_out is not None:
        row["psnr_vs_plain"], row["max_abs_err_vs_plain"] = video_error(out, reference_out)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities, record_shapes=True) as prof:
        t0 = time.perf_counter()
        dec.decode(z)
        synchronize(device)
        profiled_s = time.perf_counter() - t0
    row["profiled_wall_s"] = profiled_s
    row.update(summarise(prof, profiled_s, top))
    if row["kernels"] == 0:
        from lab.ops.profiler import profile_decoder
        stages = profile_decoder(dec, z.shape[2], tuple(z.shape[3:]), repeats=1, warmup=0)
        row["stage_timings"] = stages.get("stages", stages)
        row["stage_timings_note"] = ("the profiler recorded no device kernels (no CUPTI on this machine, or a CPU "
                                     "run): per-stage timings from lab.ops.profiler instead")
    del dec
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row, out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--decoders", required=True, help="comma-separated specs; plain names first to compare against")
    p.add_argument("--weights", default="random")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    p.add_argument("--frames", type=int, default=81)
    p.add_argument("--size", default="480x832")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "dtype": args.dtype, "frames": args.frames, "size": list(size),
              "repeats": args.repeats, "decoders": [], "triton": {}}
    plain_out: dict[str, torch.Tensor] = {}
    failed = 0
    with cuda_bench_flags(device), torch.no_grad():
        for spec in [s.strip() for s in args.decoders.split(",") if s.strip()]:
            base, runtime = split_runtime(spec)
            try:
                row, out = profile_one(spec, args.weights, device, DTYPES[args.dtype], args.frames, size,
                                       args.repeats, args.top, plain_out.get(base) if runtime else None)
            except Exception as exc:  # one decoder's failure must not cost the others' profiles
                failed += 1
                row, out = {"decoder": spec, "error": f"{type(exc).__name__}: {exc}"[:2000],
                            "traceback": traceback.format_exc()[-3000:]}, None
            if runtime is None and out is not None:
                plain_out[base] = out
            result["decoders"].append(row)
            result["triton"] = dict(triton_kernels.STATUS)
            (out_dir / "profile.json").write_text(jsonio.dumps(result, indent=1))
            print(jsonio.dumps({k: row.get(k) for k in ("decoder", "wall_s", "fps", "kernels", "kernel_s",
                                                       "gpu_busy_share", "psnr_vs_plain", "error")}, indent=None),
                  flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
