"""The decode benchmark: several decoders on random latents of one video shape, timed in one process.

Method (so the numbers can be compared):
- each decoder gets random normal latents of the geometry that decodes to ``frames`` x ``size``;
- every decoder is warmed up first (``warmup`` decodes);
- the timed repeats are interleaved (D1, D2, ..., D1, D2, ...) so load changes on a shared machine
  hit all decoders alike; each decode is bracketed by device synchronisation; ``seconds`` is the
  median, and ``speedup`` is D1's median over each decoder's median;
- ``macs`` come from one decode of the eager (uncompiled) modules under
  torch.utils.flop_counter.FlopCounterMode (MACs = FLOPs / 2; it counts matmuls and convolutions,
  which is where decoders spend their arithmetic);
- ``weights_bytes``: the bytes of the decoder modules' parameters and buffers (the encoder a teacher
  also carries is not counted);
- ``decode_mem_bytes``: what one decode itself adds at its peak. On CUDA it is
  ``torch.cuda.max_memory_allocated`` over the decode (after a reset) minus the memory allocated just
  before it, so the other loaded decoders, their latents and caches do not count; ``peak_mem_bytes``
  is the whole process's peak over that decode (every loaded model included). A CUDA-graph mode's
  memory pool is allocated when the graph is recorded, before the measured decode. On CPU both come
  from the peak resident set size (VmHWM) during one decode in a fresh subprocess that has loaded the
  decoder, with the high-water mark reset just before the decode (``/proc/self/clear_refs``):
  ``peak_mem_bytes`` is the process's resident memory (interpreter, torch, weights) plus the decode's
  working set, ``decode_mem_bytes`` that peak minus the RSS just before the decode;
- on CUDA, cuDNN picks its convolution algorithms by benchmarking (``cudnn.benchmark``; the warm-up
  absorbs it) and TF32 is off, so float32 means IEEE float32 wherever outputs are compared (the fp32
  reference, exactness of the runtimes); half-precision timings do not use TF32 either way;
- ``reference='fp32'`` (CLI ``--reference fp32``): each decoder's plain eager version is loaded once
  more in float32, decodes the same latents (cast to float32), and is freed; every row reports
  ``psnr_vs_fp32`` (dB, peak-to-peak 2 on the [-1, 1] video) and ``max_abs_err_vs_fp32``: what the
  benchmark dtype and the runtime cost in accuracy.

Runtimes: a decoder spec ``NAME@chunkK`` runs a Wan-family decoder K latent frames per causal call
(lab.runtime.chunked), ``NAME@fast`` picks K by timing (reported as ``chunk``); for a decoder without
Wan's per-chunk loop (LTX-Video, LTX-2, TAEF2, lightweight) both are no-ops (chunk 1, a row ``note`` says so). ``NAME@compile`` runs its
modules under torch.compile (``@compile-MODE`` for a mode, ``@compile-auto`` to pick the mode by timing
among eager and ``compile_candidates``, lab.runtime.compiled); ``+`` combines them
(``wan2.1@chunk4+compile``). When the plain NAME is benchmarked too, the row reports ``max_abs_err`` and
``psnr`` (dB, peak-to-peak 2) of its output against it on the same latents (``max_abs_err_vs`` names it), so a
fast path is shown to be exact in the same run that shows it fast. A decoder that cannot run (an error in its
first decodes: a CUDA graph capture, a kernel build) gets a row with its ``error`` instead of timings, and the
others are measured. Compilation happens in a first decode before anything is measured (reported as
``compile_seconds``; for ``@compile-auto``, in the mode search) and is never timed as a decode.
"""

from __future__ import annotations

import contextlib
import json
import logging
import statistics
import subprocess
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from lab.devices import DTYPES, check_device
from lab.errors import LabError
from lab.models import load_decoder
from lab.models.interface import VideoDecoder
from lab.models.registry import list_entries
from lab.progress import Progress
from lab.runtime.timing import synchronize, timed, video_error
from lab.runtime import choose_chunk
from lab.runtime.compiled import choose_compile_mode, compile_decoder, eager, strict_compile
from lab.runtime.spec import Runtime, apply_runtime, fixed_spec, runtime_note, split_runtime  # noqa: F401 (re-exported)

log = logging.getLogger("lab")


def weights_bytes(dec: VideoDecoder) -> int:
    """Bytes of the decoder modules' parameters and buffers (each tensor once)."""
    seen = {id(t): t for m in dec.decoder_modules() for t in (*m.parameters(), *m.buffers())}
    return sum(t.numel() * t.element_size() for t in seen.values())


def load_plain(name: str, weights: str | None, device, dtype) -> VideoDecoder:
    """A decoder by name or folder, eager, with the bench's seed (random weights are the same in any dtype:
    they are drawn in float32 on the CPU, then cast)."""
    # --weights applies to registered decoders; a saved folder carries its own weights, and so does a trained model
    # with no random version (a shipped student): --weights random, which asks for no downloads, leaves it as it is.
    entry = {e.name: e for e in list_entries()}.get(name)
    applies = entry is not None and (weights != "random" or entry.random_weights)
    torch.manual_seed(0)
    return load_decoder(name, weights=weights if applies else None, device=device, dtype=dtype)


def load_for_bench(spec: str, weights: str | None, device, dtype) -> VideoDecoder:
    """Load a spec's decoder with its fixed runtime applied ('auto' parts are left to the caller's search)."""
    name, runtime = split_runtime(spec)
    return apply_runtime(load_plain(name, weights, device, dtype), runtime)


def random_latents(dec: VideoDecoder, frames: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    g = dec.geometry
    t = g.latent_frames_for(frames)
    h, w = g.latent_size_for(*size)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(1, g.channels, t, h, w, generator=gen)
    return z.to(device=dec.device, dtype=dec.dtype)


def count_macs(dec: VideoDecoder, z: torch.Tensor) -> int:
    """MACs of one decode, counted on the eager modules (a compiled decoder is run uncompiled for it)."""
    with eager(dec), FlopCounterMode(display=False) as counter:
        dec.decode(z)
    return counter.get_total_flops() // 2


def cuda_decode_memory(dec: VideoDecoder, z: torch.Tensor) -> dict:
    """One decode's CUDA memory: the process's peak over it, and the decode's own share (that peak minus
    what was allocated just before it: other models, latents and caches do not count)."""
    synchronize(z.device)
    before = torch.cuda.memory_allocated(z.device)
    torch.cuda.reset_peak_memory_stats(z.device)
    out = dec.decode(z)
    synchronize(z.device)
    peak = int(torch.cuda.max_memory_allocated(z.device))
    del out
    return {"peak_mem_bytes": peak, "decode_mem_bytes": max(0, peak - before), "allocated_before_decode": before}


def cuda_peak_memory(dec: VideoDecoder, z: torch.Tensor) -> int:
    """The process's peak CUDA memory over one decode (all loaded models included)."""
    return cuda_decode_memory(dec, z)["peak_mem_bytes"]


@contextlib.contextmanager
def cuda_bench_flags(device: torch.device):
    """On CUDA: cuDNN benchmarks its conv algorithms (fixed shapes, warm-up absorbs it) and TF32 is off (so
    float32 comparisons compare IEEE float32, not TF32's 10-bit mantissa); restored after."""
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = saved


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024  # reported in kB
    raise LabError(f"bench: /proc/self/status has no {key}; CPU memory is measured on Linux only (use --no-memory)")


def cpu_peak_memory(name: str, weights: str | None, dtype: str, frames: int, size: tuple[int, int]) -> dict:
    # ``name`` may carry a runtime (NAME@chunkK): the probe loads it the same way.
    """Peak RSS of a fresh process that loads ``name`` and decodes once (see the module docstring)."""
    cmd = [sys.executable, "-m", "lab.eval.bench", "--probe-memory",
           json.dumps({"name": name, "weights": weights, "dtype": dtype, "frames": frames, "size": list(size)})]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise LabError(f"bench: the memory probe for {name} failed: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _probe_memory(spec: dict) -> dict:
    dec = load_for_bench(spec["name"], spec["weights"], "cpu", DTYPES[spec["dtype"]])
    z = random_latents(dec, spec["frames"], tuple(spec["size"]))
    try:
        # Reset the high-water mark so that import- and load-time peaks do not mask the decode's.
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    before = _status_bytes("VmRSS")
    dec.decode(z)
    peak = _status_bytes("VmHWM")
    return {"peak_mem_bytes": peak, "decode_mem_bytes": max(0, peak - before), "rss_before_decode": before,
            "peak_reset": reset}


def bench(decoders: list[str], *, weights: str | None = None, device: str | torch.device = "cpu",
          dtype: str = "fp32", frames: int = 17, size: tuple[int, int] = (256, 256), repeats: int = 5,
          warmup: int = 1, compile: bool | str = False, memory: bool = True, macs: bool = True,
          reference: str | None = None, compile_candidates: tuple[str, ...] | None = None) -> dict:
    """Time ``decoders`` (names or folders, each optionally with a runtime, see the module docstring) on
    random latents of one shape. ``compile``: True or a torch.compile mode compiles every decoder that
    its spec does not already compile. ``reference='fp32'``: accuracy of every row against its plain
    decoder in float32. ``compile_candidates``: the modes ``@compile-auto`` tries besides eager
    (default lab.runtime.compiled.AUTO_MODES)."""
    if not decoders:
        raise LabError("bench: name at least one decoder (--decoders D1,D2,...)")
    if repeats < 1 or warmup < 0:
        raise LabError(f"bench: --repeats must be >= 1 and --warmup >= 0, got {repeats} and {warmup}")
    if reference not in (None, "fp32"):
        raise LabError(f"bench: --reference takes fp32, got '{reference}'")
    device = check_device(device)
    with cuda_bench_flags(device):
        rows = _bench(decoders, weights, device, dtype, DTYPES[dtype], frames, size, repeats, warmup, compile,
                      memory, macs, reference, compile_candidates)
    return {"device": str(device), "dtype": dtype, "frames": frames, "size": list(size), "repeats": repeats,
            "warmup": warmup, "compile": compile, "reference": reference, "threads": torch.get_num_threads(),
            "peak_mem_kind": ("cuda max_memory_allocated (decode_mem_bytes: the decode's own share)"
                              if device.type == "cuda"
                              else "cpu peak RSS of a fresh process (load + one decode)") if memory else None,
            "decoders": rows}


def _bench(decoders, weights, device, dtype, torch_dtype, frames, size, repeats, warmup, compile, memory, macs,
           reference, compile_candidates) -> list[dict]:
    decs = [load_for_bench(n, weights, device, torch_dtype) for n in decoders]
    if compile:
        for name, dec in zip(decoders, decs):
            runtime = split_runtime(name)[1]
            if runtime is None or runtime.compile is None:  # a spec's own @compile-MODE / -auto wins
                compile_decoder(dec, "default" if compile is True else compile)
    zs = [random_latents(d, frames, size) for d in decs]
    # One count for the whole bench: each decoder's probes (MACs, memory, searches), then every warm-up and timed
    # decode; compare the rate with the time of one decode.
    with Progress("bench", len(decs) * (1 + warmup + repeats), unit="decode") as bar:
        rows, failed = [], set()
        plain = {n: i for i, n in enumerate(decoders) if split_runtime(n)[1] is None}
        for i, (name, dec, z) in enumerate(zip(decoders, decs, zs)):
            try:
                rows.append(_probe(i, name, dec, z, decs, zs, plain, weights, device, dtype, frames, size, memory,
                                   macs, compile_candidates))
            except LabError:
                raise
            except Exception as exc:  # noqa: BLE001 - one decoder that cannot run must not cost the others' rows
                failed.add(i)
                first = str(exc).splitlines()[0] if str(exc) else ""
                rows.append({"decoder": name, "error": f"{type(exc).__name__}: {first}"[:500]})
                log.warning("bench: %s failed, left out of the timing: %s", name, rows[-1]["error"])
            bar.update(note=f"{name} probed")
        ok = [i for i in range(len(decs)) if i not in failed]
        if not ok:
            raise LabError("bench: every decoder failed: " + "; ".join(r["error"] for r in rows))
        if reference == "fp32":
            fp32_reference([decoders[i] for i in ok], [decs[i] for i in ok], [zs[i] for i in ok],
                           [rows[i] for i in ok], weights, device)
        for i in ok:
            for _ in range(warmup):
                decs[i].decode(zs[i])
                bar.update(note="warm-up")
        synchronize(device)
        times = {i: [] for i in ok}
        for r in range(repeats):
            for i in ok:
                times[i].append(timed(decs[i].decode, zs[i]))
                bar.update(note=f"repeat {r + 1}/{repeats}")
    base = statistics.median(times[ok[0]])  # D1's, or the first decoder that ran
    for i in ok:
        sec = statistics.median(times[i])
        rows[i].update(seconds=sec, fps=rows[i]["frames"] / sec, speedup=base / sec, times=times[i])
        if ok[0] != 0:
            rows[i]["speedup_vs"] = decoders[ok[0]]
    return rows


def _probe(i, name, dec, z, decs, zs, plain, weights, device, dtype, frames, size, memory, macs,
           compile_candidates) -> dict:
    """The row of decoder ``i`` before timing: sizes, its runtime's choices, its error against its plain decoder,
    MACs and memory; every decode it needs runs here, so a decoder that cannot run fails here, alone."""
    row = {"decoder": name, "family": dec.family, "decoder_params": dec.decoder_params(),
           "weights_bytes": weights_bytes(dec), "latents_shape": list(z.shape),
           "frames": dec.geometry.frames_for(z.shape[2]), "size": list(size)}
    base, runtime = split_runtime(name)
    notes = [n for n in [runtime_note(dec, runtime)] if n]
    if runtime is not None and runtime.chunk == "auto" and not notes:
        chosen = choose_chunk(dec, z)
        row["chunk_seconds"] = {str(k): v for k, v in chosen["seconds"].items()}
    if runtime is not None and runtime.compile == "auto":
        chosen = choose_compile_mode(dec, z, modes=compile_candidates)
        row.update(compile_search={k: chosen[k] for k in ("seconds", "compile_seconds", "psnr", "max_abs_err",
                                                          "rejected", "reused")})
    elif dec.compile_mode is not None:
        # Compile now, outside anything measured; a recompile-limit hit would otherwise time eager as compiled.
        mode = dec.compile_mode
        try:
            with strict_compile(f"{name} ({mode})"):
                row["compile_seconds"] = timed(dec.decode, z)
        except Exception as exc:  # one decoder's failed compile should not cost the whole (long) bench
            compile_decoder(dec, "eager")
            notes.append(f"compile-{mode} failed, timed eager: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}")
            log.warning("bench: %s: %s", name, notes[-1])
    if runtime is not None and runtime.searched:
        name = fixed_spec(base, dec)  # what the memory probe must load
    if runtime is not None or dec.compile_mode is not None:
        row["chunk"] = dec.chunk_frames
        row["compile_mode"] = dec.compile_mode
        if base in plain and plain[base] != i:
            ref = decs[plain[base]]
            row["psnr"], row["max_abs_err"] = video_error(dec.decode(z), ref.decode(zs[plain[base]]))
            row["max_abs_err_vs"] = base
    if macs:
        row["macs"] = int(count_macs(dec, z))
    if memory:
        if device.type == "cuda":
            row.update(cuda_decode_memory(dec, z))
        else:
            registered = {e.name for e in list_entries()}
            row.update(cpu_peak_memory(name, weights if base in registered else None, dtype, frames, size))
    if not ("max_abs_err" in row or "compile_seconds" in row or "decode_mem_bytes" in row and device.type == "cuda"):
        dec.decode(z)  # nothing above ran its decode: one now, so a decoder that cannot run fails here, alone
    if notes:
        row["note"] = "; ".join(notes)
    return row


def fp32_reference(decoders: list[str], decs: list[VideoDecoder], zs: list[torch.Tensor], rows: list[dict],
                   weights: str | None, device: torch.device) -> None:
    """Add ``psnr_vs_fp32`` and ``max_abs_err_vs_fp32`` to ``rows``: each decoder's output against its plain
    eager decoder in float32 on the same latents. One float32 copy (and its video) at a time, freed before
    the next, so the GPU holds at most one extra model."""
    by_base: dict[str, list[int]] = {}
    for i, name in enumerate(decoders):
        by_base.setdefault(split_runtime(name)[0], []).append(i)
    for base, idx in by_base.items():
        ref_dec = load_plain(base, weights, device, torch.float32)
        ref = ref_dec.decode(zs[idx[0]].float())
        del ref_dec
        if device.type == "cuda":
            torch.cuda.empty_cache()
        for i in idx:
            if zs[i].shape != zs[idx[0]].shape:  # same base, same geometry and seed: cannot differ
                raise LabError(f"bench: {decoders[i]} got latents {tuple(zs[i].shape)}, its fp32 reference "
                               f"{tuple(zs[idx[0]].shape)}")
            psnr, err = video_error(decs[i].decode(zs[i]), ref)
            rows[i].update(psnr_vs_fp32=psnr, max_abs_err_vs_fp32=err)
        del ref
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--probe-memory":
        print(json.dumps(_probe_memory(json.loads(sys.argv[2]))))
    else:
        sys.exit("usage: python -m lab bench ... (this module's own entry point is the CPU memory probe)")
