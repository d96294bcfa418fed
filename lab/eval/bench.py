"""The decode benchmark: several decoders on random latents of one video shape, timed in one process.

Method (so the numbers can be compared):
- each decoder gets random normal latents of the geometry that decodes to ``frames`` x ``size``;
- every decoder is warmed up first (``warmup`` decodes; with ``--compile`` this absorbs compilation);
- the timed repeats are interleaved (D1, D2, ..., D1, D2, ...) so load changes on a shared machine
  hit all decoders alike; each decode is bracketed by device synchronisation; ``seconds`` is the
  median, and ``speedup`` is D1's median over each decoder's median;
- ``macs`` come from one decode under torch.utils.flop_counter.FlopCounterMode (MACs = FLOPs / 2;
  it counts matmuls and convolutions, which is where decoders spend their arithmetic);
- ``peak_mem_bytes``: on CUDA, ``torch.cuda.max_memory_allocated`` over one decode after a reset
  (weights + latents + activations); on CPU, the peak resident set size (VmHWM) during one decode
  in a fresh subprocess that has loaded the decoder, with the high-water mark reset just before
  the decode (``/proc/self/clear_refs``), so it is the process's resident memory (interpreter,
  torch, weights) plus the decode's working set; ``decode_mem_bytes`` is that peak minus the RSS
  just before the decode, i.e. what the decode itself added.

Runtimes: a decoder spec ``NAME@chunkK`` runs a Wan-family decoder K latent frames per causal call
(lab.runtime.chunked), ``NAME@fast`` picks K by timing (reported as ``chunk``); ``NAME@compile`` runs
its modules under torch.compile (``@compile-MODE`` for a mode, ``@compile-auto`` to pick the mode by
timing, lab.runtime.compiled); ``+`` combines them (``wan2.1@chunk4+compile``). When the plain NAME is
benchmarked too, the row reports ``max_abs_err`` of its output against it on the same latents, so a
fast path is shown to be exact in the same run that shows it fast. Compilation happens in the warm-up
(or, for ``@compile-auto``, in the mode search) and is never timed as a decode.
"""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from lab.errors import LabError
from lab.models import load_decoder
from lab.models.interface import VideoDecoder
from lab.models.registry import list_entries

log = logging.getLogger("lab")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, z: torch.Tensor) -> float:
    """Seconds of one call ``fn(z)``, with the device synchronised before and after (CUDA runs
    asynchronously: without the syncs the clock would stop before the work does)."""
    synchronize(z.device)
    t0 = time.perf_counter()
    fn(z)
    synchronize(z.device)
    return time.perf_counter() - t0


@dataclass(frozen=True)
class Runtime:
    """How a spec's decoder runs: ``chunk`` latent frames per causal call (an int, 'auto' = by timing, or
    None = the decoder's default), under torch.compile ``compile`` (a mode, 'auto', or None = eager)."""
    chunk: int | str | None = None
    compile: str | None = None

    @property
    def searched(self) -> bool:
        return self.chunk == "auto" or self.compile == "auto"


def split_runtime(spec: str) -> tuple[str, Runtime | None]:
    """'wan2.1@chunk4' -> ('wan2.1', Runtime(chunk=4)); 'wan2.1@fast' -> chunk 'auto'; 'wan2.1@compile' ->
    compile 'default'; 'ltx-video@compile-auto' -> compile 'auto'; 'a@chunk2+compile' -> both;
    'wan2.1' -> ('wan2.1', None)."""
    from lab.runtime.compiled import MODES

    name, at, suffix = spec.rpartition("@")
    if not at:
        return spec, None
    chunk, mode = None, None
    for part in suffix.split("+"):
        if part == "fast" and chunk is None:
            chunk = "auto"
        elif part.startswith("chunk") and part[5:].isdigit() and int(part[5:]) >= 1 and chunk is None:
            chunk = int(part[5:])
        elif part == "compile" and mode is None:
            mode = "default"
        elif part.startswith("compile-") and part[8:] in MODES + ("auto",) and mode is None:
            mode = part[8:]
        else:
            raise LabError(f"unknown runtime '{part}' in '{spec}'; use NAME@chunkK (K >= 1 latent frames per call), "
                           f"NAME@fast (K chosen by timing), NAME@compile or NAME@compile-MODE (MODE: "
                           f"{', '.join(MODES)}, or auto), each at most once, joined by '+'.")
    return name, Runtime(chunk, mode)


def load_for_bench(spec: str, weights: str | None, device, dtype) -> VideoDecoder:
    """Load a spec's decoder with its fixed runtime applied ('auto' parts are left to the caller's search)."""
    # --weights applies to registered decoders; a saved folder carries its own weights.
    name, runtime = split_runtime(spec)
    registered = {e.name for e in list_entries()}
    torch.manual_seed(0)
    dec = load_decoder(name, weights=weights if name in registered else None, device=device, dtype=dtype)
    if runtime is not None and isinstance(runtime.chunk, int):
        from lab.runtime import set_chunk
        set_chunk(dec, runtime.chunk)
    if runtime is not None and runtime.compile not in (None, "auto"):
        from lab.runtime.compiled import compile_decoder
        compile_decoder(dec, runtime.compile)
    return dec


def fixed_spec(base: str, dec: VideoDecoder) -> str:
    """The spec that loads ``dec`` as it is now (after a search picked its chunk and compile mode)."""
    parts = ([f"chunk{dec.chunk_frames}"] if dec.chunk_frames > 1 else []) + \
        ([f"compile-{dec.compile_mode}"] if dec.compile_mode else [])
    return f"{base}@{'+'.join(parts)}" if parts else base


def random_latents(dec: VideoDecoder, frames: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    g = dec.geometry
    t = g.latent_frames_for(frames)
    h, w = g.latent_size_for(*size)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(1, g.channels, t, h, w, generator=gen)
    return z.to(device=dec.device, dtype=dec.dtype)


def count_macs(dec: VideoDecoder, z: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        dec.decode(z)
    return counter.get_total_flops() // 2


def cuda_peak_memory(dec: VideoDecoder, z: torch.Tensor) -> int:
    synchronize(z.device)
    torch.cuda.reset_peak_memory_stats(z.device)
    dec.decode(z)
    synchronize(z.device)
    return int(torch.cuda.max_memory_allocated(z.device))


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
    from lab.cli.common import DTYPES
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
          warmup: int = 1, compile: bool | str = False, memory: bool = True, macs: bool = True) -> dict:
    """Time ``decoders`` (names or folders, each optionally with a runtime, see the module docstring) on
    random latents of one shape. ``compile``: True or a torch.compile mode compiles every decoder that
    its spec does not already compile."""
    from lab.cli.common import DTYPES
    if not decoders:
        raise LabError("bench: name at least one decoder (--decoders D1,D2,...)")
    if repeats < 1 or warmup < 0:
        raise LabError(f"bench: --repeats must be >= 1 and --warmup >= 0, got {repeats} and {warmup}")
    device = torch.device(device)
    decs = [load_for_bench(n, weights, device, DTYPES[dtype]) for n in decoders]
    zs = [random_latents(d, frames, size) for d in decs]
    rows = []
    plain = {n: i for i, n in enumerate(decoders) if split_runtime(n)[1] is None}
    registered = {e.name for e in list_entries()}
    for i, (name, dec, z) in enumerate(zip(decoders, decs, zs)):
        row = {"decoder": name, "family": dec.family, "decoder_params": dec.decoder_params(),
               "latents_shape": list(z.shape), "frames": dec.geometry.frames_for(z.shape[2]),
               "size": list(size)}
        base, runtime = split_runtime(name)
        if runtime is not None and runtime.chunk == "auto":
            from lab.runtime import choose_chunk
            chosen = choose_chunk(dec, z)
            row["chunk_seconds"] = {str(k): v for k, v in chosen["seconds"].items()}
        if runtime is not None and runtime.compile == "auto":
            from lab.runtime.compiled import choose_compile_mode
            chosen = choose_compile_mode(dec, z)
            row.update(compile_search={k: chosen[k] for k in ("seconds", "compile_seconds", "max_abs_err",
                                                              "rejected")})
        if runtime is not None and runtime.searched:
            name = fixed_spec(base, dec)  # what the memory probe must load
        if runtime is not None:
            row["chunk"] = dec.chunk_frames
            row["compile_mode"] = dec.compile_mode
            if base in plain:
                ref = decs[plain[base]]
                row["max_abs_err"] = float((dec.decode(z).float() - ref.decode(zs[plain[base]]).float()).abs().max())
                row["max_abs_err_vs"] = base
        if macs:
            row["macs"] = int(count_macs(dec, z))
        if memory:
            if device.type == "cuda":
                row["peak_mem_bytes"] = cuda_peak_memory(dec, z)
            else:
                row.update(cpu_peak_memory(name, weights if base in registered else None,
                                           dtype, frames, size))
        rows.append(row)
    if compile:
        from lab.runtime.compiled import compile_decoder
        for dec in decs:
            if dec.compile_mode is None:  # a spec's own @compile-MODE wins over the global flag
                compile_decoder(dec, "default" if compile is True else compile)
    fns = [dec.decode for dec in decs]
    for fn, z in zip(fns, zs):
        for _ in range(warmup):
            fn(z)
    synchronize(device)
    times = [[] for _ in decs]
    for _ in range(repeats):
        for i, (fn, z) in enumerate(zip(fns, zs)):
            times[i].append(timed(fn, z))
    base = statistics.median(times[0])
    for row, ts in zip(rows, times):
        sec = statistics.median(ts)
        row.update(seconds=sec, fps=row["frames"] / sec, speedup=base / sec, times=ts)
    return {"device": str(device), "dtype": dtype, "frames": frames, "size": list(size), "repeats": repeats,
            "warmup": warmup, "compile": compile, "threads": torch.get_num_threads(),
            "peak_mem_kind": ("cuda max_memory_allocated" if device.type == "cuda"
                              else "cpu peak RSS of a fresh process (load + one decode)") if memory else None,
            "decoders": rows}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--probe-memory":
        print(json.dumps(_probe_memory(json.loads(sys.argv[2]))))
    else:
        sys.exit("usage: python -m lab bench ... (this module's own entry point is the CPU memory probe)")
