"""torch.compile for the lab's decoders, with the mode chosen by measurement.

What is compiled: each of the decoder's own modules (``decoder.decoder_modules()``): for a Wan-family
decoder the per-chunk causal step (``post_quant_conv`` and ``decoder``), so the chunk loop, the feature
cache and streaming stay ordinary Python around compiled graphs; for LTX-Video and the lightweight
decoders the whole decoder module. ``dynamic=False``: a decode has few distinct shapes (Wan: the first
latent frame, the full chunks, a last partial chunk), each compiled once.

Modes: ``default`` (Inductor kernels), ``max-autotune-no-cudagraphs`` (also searches kernel configs),
and on CUDA ``reduce-overhead`` / ``max-autotune``, which record CUDA graphs of each compiled step, so
a chunk replays without per-kernel launch overhead. Which is fastest depends on the device, the decoder
and the shapes, so ``choose_compile_mode`` times them (eager included) on the real latents and keeps
the fastest whose output matches eager within a tolerance.

Measured here (CPU only; no GPU was available to the sessions that built this): mini-wan, 17 frames at
64x64, chunks of 2, 1 thread: eager 1.35 s, compiled (default) 1.33 s, after 152 s of compilation; max
abs error 6e-7. On CPU compilation does not pay for these decoders; the modes exist for GPUs, where
they are untested by the lab so far (``python -m lab bench --decoders wan2.1,wan2.1@chunk4+compile-auto
--device cuda --dtype bf16 ...``).
"""

from __future__ import annotations

import statistics
import time

import torch

from lab.errors import LabError

MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")
EAGER = "eager"


def device_modes(device: torch.device) -> tuple[str, ...]:
    """The modes worth timing on ``device``: the CUDA-graph modes only where there are CUDA graphs."""
    if torch.device(device).type == "cuda":
        return MODES
    return ("default", "max-autotune-no-cudagraphs")


def _modules(decoder) -> list[torch.nn.Module]:
    modules = [m for m in decoder.decoder_modules() if isinstance(m, torch.nn.Module)]
    if not modules:
        raise LabError(f"{decoder.name}: no decoder modules to compile")
    return modules


def _compiled_forwards(decoder, mode: str) -> list:
    return [torch.compile(m.forward, mode=mode, dynamic=False) for m in _modules(decoder)]


def _install(decoder, forwards: list | None, mode: str | None) -> None:
    # An instance attribute ``forward`` shadows the class's method (nn.Module.__call__ looks it up on
    # the instance), so removing it restores eager exactly.
    modules = _modules(decoder)
    for m, fwd in zip(modules, forwards or [None] * len(modules)):
        if fwd is None:
            m.__dict__.pop("forward", None)
        else:
            m.forward = fwd
    decoder.compile_mode = mode


def compile_decoder(decoder, mode: str = "default"):
    """Compile ``decoder``'s modules with torch.compile ``mode`` (compilation happens on the first decode
    of each shape). ``mode='eager'`` restores the uncompiled decoder. Returns the decoder."""
    if mode == EAGER:
        _install(decoder, None, None)
        return decoder
    if mode not in MODES:
        raise LabError(f"unknown torch.compile mode '{mode}'; use one of {', '.join(MODES)} or '{EAGER}' "
                       f"(choose_compile_mode picks one by timing)")
    _install(decoder, None, None)
    _install(decoder, _compiled_forwards(decoder, mode), mode)
    return decoder


def choose_compile_mode(decoder, z: torch.Tensor, modes: tuple[str, ...] | None = None, repeats: int = 3,
                        tolerance: float | None = None) -> dict:
    """Compile ``decoder`` in each mode (default: ``device_modes``), check its output against eager on
    ``z`` (max abs error <= ``tolerance``; default 1e-3 in float32, 5e-2 in half precision, where fused
    kernels round differently), time eager and every matching mode interleaved (medians of ``repeats``,
    synchronised) and keep the fastest; eager is always a candidate. Returns {'mode', 'seconds': {mode:
    median}, 'compile_seconds': {mode: first decode}, 'max_abs_err': {mode: err}, 'rejected': {mode: why}}."""
    from lab.eval.bench import timed

    if repeats < 1:
        raise LabError(f"repeats must be >= 1, got {repeats}")
    modes = tuple(modes or device_modes(z.device))
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise LabError(f"unknown torch.compile mode(s) {', '.join(unknown)}; choose among {', '.join(MODES)} "
                       f"(eager is always timed)")
    if tolerance is None:
        tolerance = 1e-3 if z.dtype == torch.float32 else 5e-2
    _install(decoder, None, None)
    reference = decoder.decode(z).float()
    forwards, compile_s, err, rejected = {EAGER: None}, {}, {}, {}
    try:
        for mode in modes:
            fwd = _compiled_forwards(decoder, mode)
            _install(decoder, fwd, mode)
            try:
                compile_s[mode] = timed(decoder.decode, z)  # the first decode compiles
                err[mode] = float((decoder.decode(z).float() - reference).abs().max())
            except Exception as exc:  # a mode this device/toolchain cannot build is skipped, and said so
                rejected[mode] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                continue
            if err[mode] > tolerance:
                rejected[mode] = f"max abs error {err[mode]:.2e} > tolerance {tolerance:.0e}"
                continue
            forwards[mode] = fwd
        times: dict[str, list[float]] = {m: [] for m in forwards}
        for _ in range(repeats):
            for mode, fwd in forwards.items():
                _install(decoder, fwd, None if mode == EAGER else mode)
                times[mode].append(timed(decoder.decode, z))
    except BaseException:
        _install(decoder, None, None)
        raise
    seconds = {m: statistics.median(ts) for m, ts in times.items()}
    best = min(seconds, key=seconds.get)
    _install(decoder, forwards[best], None if best == EAGER else best)
    return {"mode": best, "seconds": seconds, "compile_seconds": compile_s, "max_abs_err": err,
            "rejected": rejected, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), "device": str(z.device)}
