"""torch.compile for the lab's decoders, with the mode chosen by measurement.

What is compiled: each of the decoder's own modules (``decoder.decoder_modules()``): for a Wan-family
decoder the per-chunk causal step (``post_quant_conv`` and ``decoder``), so the chunk loop, the feature
cache and streaming stay ordinary Python around compiled graphs; for LTX-Video and the lightweight
decoders the whole decoder module. ``dynamic=False``: a decode has few distinct shapes (Wan: the first
latent frame, the full chunks, a last partial chunk), each compiled once.

Modes: ``default`` (Inductor kernels), ``max-autotune-no-cudagraphs`` (also searches kernel configs),
and on CUDA ``reduce-overhead`` / ``max-autotune``, which record CUDA graphs of each compiled step, so
a call replays without per-kernel launch overhead. The CUDA-graph modes are refused for causal decoders
(see ``keeps_state``). ``choose_compile_mode`` times eager and the candidates on the real latents and
keeps the fastest whose output matches eager (by PSNR, see there); by default the only candidate is
``default`` (``AUTO_MODES``): each mode compiles every chunk shape again, and autotuning a full-size
decoder at 480p takes tens of minutes, so wider searches are asked for by name.

Dynamo keeps compiled code per code object, and every decoder of a family shares its classes' code: the
teacher, its students, each mode and each shape add entries to the same cache. Past
``torch._dynamo.config.recompile_limit`` (8 by default) Dynamo silently runs the code eagerly, which
would time a "compiled" decoder as eager. So compiling raises the limit (``raise_recompile_limit``),
and the first decode of a mode runs under ``strict_compile``, which turns a limit hit into an error.

Measured here (CPU only; no GPU was available to the sessions that built this): mini-wan, 17 frames at
64x64, chunks of 2, 1 thread: eager 1.35 s, compiled (default) 1.33 s, after 152 s of compilation; max
abs error 6e-7. On CPU compilation does not pay for these decoders; the modes exist for GPUs, where
they are untested by the lab so far (``python -m lab bench --decoders wan2.1,wan2.1@chunk4+compile-auto
--device cuda --dtype bf16 ...``).
"""

from __future__ import annotations

import contextlib
import statistics
import time

import torch

from lab.errors import LabError
from lab.runtime.timing import timed, video_error

MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")
CUDAGRAPH_MODES = ("reduce-overhead", "max-autotune")
# What 'compile-auto' tries besides eager unless more are asked for (the module docstring says why).
AUTO_MODES = ("default",)
EAGER = "eager"
# Entries per code object: modes (4) x shapes per decode (3 for chunked Wan) x decoders sharing the code
# (teacher, students) in one bench stay well under 64.
RECOMPILE_LIMIT = 64


def keeps_state(decoder) -> bool:
    """True for causal decoders: their compiled step reads state left by the previous call (Wan's
    ``_feat_map``, the cached last frames of every causal conv). Under a CUDA-graph mode those cache
    tensors are outputs of one graph replay and inputs of the next, living in the graph's memory pool,
    which the next replay of the same graph overwrites: the cache could be silently corrupted. The
    alternatives (clone every cache entry after each step, or ``cudagraph_mark_step_begin`` per step,
    which invalidates exactly those outputs) copy the cache every step, the traffic CUDA graphs were to
    save, so the safe choice is to refuse the CUDA-graph modes for these decoders."""
    return bool(getattr(decoder, "causal", False))


def device_modes(device: torch.device, decoder=None) -> tuple[str, ...]:
    """The modes that can run on ``device`` (for ``decoder``, when given): the CUDA-graph modes only where
    there are CUDA graphs and the decoder keeps no state between calls (``keeps_state``)."""
    if torch.device(device).type == "cuda" and not (decoder is not None and keeps_state(decoder)):
        return MODES
    return tuple(m for m in MODES if m not in CUDAGRAPH_MODES)


def raise_recompile_limit(limit: int = RECOMPILE_LIMIT) -> None:
    """Raise Dynamo's per-code-object recompile limit (and the accumulated one) to at least ``limit``
    (the names changed across torch versions: set whichever exist, never lower them)."""
    cfg = torch._dynamo.config
    for name, value in (("recompile_limit", limit), ("cache_size_limit", limit),
                        ("accumulated_recompile_limit", 8 * limit), ("accumulated_cache_size_limit", 8 * limit)):
        if isinstance(getattr(cfg, name, None), int) and getattr(cfg, name) < value:
            setattr(cfg, name, value)


@contextlib.contextmanager
def strict_compile(what: str = "the decoder"):
    """Inside, a Dynamo recompile-limit hit raises a LabError instead of silently running eager."""
    cfg = torch._dynamo.config
    flag = next((n for n in ("fail_on_recompile_limit_hit", "fail_on_cache_limit_hit") if hasattr(cfg, n)), None)
    with cfg.patch(**{flag: True}) if flag else contextlib.nullcontext():
        try:
            yield
        except Exception as exc:
            if "LimitHit" not in type(exc).__name__:
                raise
            raise LabError(f"torch.compile of {what} hit Dynamo's recompile limit (recompile_limit="
                           f"{getattr(cfg, 'recompile_limit', getattr(cfg, 'cache_size_limit', '?'))}) and would "
                           f"have run eagerly; compile fewer decoders or modes in one process") from exc


def _modules(decoder) -> list[torch.nn.Module]:
    modules = [m for m in decoder.decoder_modules() if isinstance(m, torch.nn.Module)]
    if not modules:
        raise LabError(f"{decoder.name}: no decoder modules to compile")
    return modules


def _compiled_forwards(decoder, mode: str) -> list:
    raise_recompile_limit()
    return [torch.compile(m.forward, mode=mode, dynamic=False) for m in _modules(decoder)]


def _install(decoder, forwards: list | None, mode: str | None) -> None:
    # An instance attribute ``forward`` shadows the class's method (nn.Module.__call__ looks it up on
    # the instance), so removing it restores eager exactly; under the fused runtime (lab.runtime.fused),
    # "uncompiled" is the runtime's own forward, which is what gets compiled too.
    modules = _modules(decoder)
    fused = getattr(decoder, "fused", None)
    for m, fwd in zip(modules, forwards or [None] * len(modules)):
        if fwd is None:
            m.__dict__.pop("forward", None)
            base = fused.base_forward(m) if fused is not None else None
            if base is not None:
                m.forward = base
        else:
            m.forward = fwd
    decoder.compile_mode = mode


@contextlib.contextmanager
def eager(decoder):
    """Run ``decoder`` uncompiled inside (e.g. to count its MACs: FlopCounterMode sees the eager ops, not
    what a compiled graph fuses or hides), its compiled forwards restored after."""
    modules = _modules(decoder)
    saved, mode = [m.__dict__.get("forward") for m in modules], decoder.compile_mode
    _install(decoder, None, None)
    try:
        yield decoder
    finally:
        _install(decoder, saved, mode)


def _check_mode(decoder, mode: str) -> None:
    if mode not in MODES:
        raise LabError(f"unknown torch.compile mode '{mode}'; use one of {', '.join(MODES)} or '{EAGER}' "
                       f"(choose_compile_mode picks one by timing)")
    if mode in CUDAGRAPH_MODES and keeps_state(decoder):
        raise LabError(f"{decoder.name} is causal: its steps share a feature cache that a CUDA-graph mode "
                       f"('{mode}') could overwrite between replays; use default or max-autotune-no-cudagraphs")


def compile_decoder(decoder, mode: str = "default"):
    """Compile ``decoder``'s modules with torch.compile ``mode`` (compilation happens on the first decode
    of each shape). ``mode='eager'`` restores the uncompiled decoder. Returns the decoder."""
    if mode == EAGER:
        _install(decoder, None, None)
        return decoder
    _check_mode(decoder, mode)
    _install(decoder, None, None)
    _install(decoder, _compiled_forwards(decoder, mode), mode)
    return decoder


# Search results by (decoder, runtime, latents, candidates): a search is compiles of every candidate for
# every chunk shape, so the same question in one process is answered once.
_SEARCHES: dict[tuple, dict] = {}


def _search_key(decoder, z: torch.Tensor, modes: tuple[str, ...], min_psnr: float) -> tuple:
    return (type(decoder).__name__, decoder.name, decoder.decoder_params(), getattr(decoder, "chunk_frames", 1),
            tuple(z.shape), z.dtype, str(z.device), modes, min_psnr)


def choose_compile_mode(decoder, z: torch.Tensor, modes: tuple[str, ...] | None = None, repeats: int = 3,
                        min_psnr: float | None = None, reuse: bool = True) -> dict:
    """Compile ``decoder`` in each mode (default: ``AUTO_MODES``; modes this device or decoder cannot run,
    see ``device_modes``, are rejected with the reason), check its output against eager on ``z``, time
    eager and every matching mode interleaved (medians of ``repeats``, synchronised) and keep the
    fastest; eager is always a candidate. A mode matches when its PSNR against eager (peak-to-peak 2)
    is at least ``min_psnr`` (default 60 dB in float32, 40 dB in half precision): fused kernels round
    differently, and in bf16 a handful of the ~1e8 values of a 480p clip differ by a few bf16 steps
    even when the mode is correct, so the max abs error (reported too) would reject good modes.
    ``reuse``: the same search (decoder, chunk, latents shape, candidates) earlier in this process is
    not repeated; its winner is installed (compiled on the next decode) and the report says
    ``reused``. Returns {'mode', 'seconds': {mode: median}, 'compile_seconds': {mode: first decode},
    'psnr': {mode: dB}, 'max_abs_err': {mode: err}, 'rejected': {mode: why}}."""

    if repeats < 1:
        raise LabError(f"repeats must be >= 1, got {repeats}")
    modes = tuple(modes or AUTO_MODES)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise LabError(f"unknown torch.compile mode(s) {', '.join(unknown)}; choose among {', '.join(MODES)} "
                       f"(eager is always timed)")
    if min_psnr is None:
        min_psnr = 60.0 if z.dtype == torch.float32 else 40.0
    key = _search_key(decoder, z, modes, min_psnr)
    if reuse and key in _SEARCHES:
        found = _SEARCHES[key]
        compile_decoder(decoder, found["mode"])
        return {**found, "reused": True}
    runnable = device_modes(z.device, decoder)
    rejected = {m: (f"CUDA-graph mode: {decoder.name} is causal, its feature cache would be overwritten "
                    f"between replays" if m in CUDAGRAPH_MODES and z.device.type == "cuda"
                    else f"not available on {z.device.type}") for m in modes if m not in runnable}
    _install(decoder, None, None)
    reference = decoder.decode(z).float()
    forwards, compile_s, err, psnr = {EAGER: None}, {}, {}, {}
    try:
        for mode in (m for m in modes if m in runnable):
            fwd = _compiled_forwards(decoder, mode)
            _install(decoder, fwd, mode)
            try:
                with strict_compile(f"{decoder.name} ({mode})"):
                    compile_s[mode] = timed(decoder.decode, z)  # the first decode compiles
                psnr[mode], err[mode] = video_error(decoder.decode(z), reference)
            except Exception as exc:  # a mode this device/toolchain cannot build is skipped, and said so
                rejected[mode] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                continue
            if not psnr[mode] >= min_psnr:  # NaN fails too
                rejected[mode] = f"PSNR vs eager {psnr[mode]:.1f} dB < {min_psnr:g} dB"
                continue
            forwards[mode] = fwd
        del reference
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
    report = {"mode": best, "seconds": seconds, "compile_seconds": compile_s, "psnr": psnr, "max_abs_err": err,
              "rejected": rejected, "candidates": list(modes), "min_psnr": min_psnr,
              "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), "device": str(z.device)}
    _SEARCHES[key] = report
    return {**report, "reused": False}
