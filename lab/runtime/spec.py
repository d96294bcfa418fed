"""Runtime specs: ``NAME@RUNTIME`` names how a decoder runs, on every command that takes a decoder.

Parts, joined by ``+`` (each at most once):
- ``chunkK``: a Wan-family decoder decodes K latent frames per causal call (lab.runtime.chunked);
- ``fast``: K chosen by timing (only where latents are at hand to time: ``lab bench``);
- ``fused``: the lab's fused runtime (lab.runtime.fused): fused norm + activation kernels, causal caches
  without copies, channels-last buffers; the same output within a stated tolerance;
- ``graphs``: with ``fused``, on CUDA, each steady-state causal step replays as one CUDA graph (the same
  kernels, one launch);
- ``subpixel``: with ``fused``, each "nearest 2x upsample + 3x3 conv" as one sub-pixel (transposed) conv
  (lab.runtime.fused.subpixel): the upsampled tensor is never materialised, 2.25x fewer MACs in those
  convs, another rounding;
- ``compile`` / ``compile-MODE`` / ``compile-auto``: the decoder's modules under torch.compile
  (lab.runtime.compiled; ``auto`` picks the mode by timing, ``lab bench`` only);
- ``eager`` (alone): diffusers' own modules, as a plain name gives them to ``lab bench`` and ``lab trace``.

A plain name means eager everywhere but in the commands that only decode (``lab decode``, ``lab eval``): there
``default_runtime`` gives it ``@fused`` where its family has measured the fused runtime within tolerance of eager
and faster (``register_fused_runtime(..., default_on=...)``), and ``NAME@eager`` opts out.

``apply_runtime`` installs the fixed parts on a loaded decoder; the searched parts (``fast``,
``compile-auto``) are left to callers that can time candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.errors import LabError
from lab.runtime.chunked import is_chunkable, set_chunk
from lab.runtime.compiled import MODES, compile_decoder
from lab.runtime.fused import fused_by_default, is_fusable, set_fused, why_not_fusable


@dataclass(frozen=True)
class Runtime:
    """How a spec's decoder runs: ``chunk`` latent frames per causal call (an int, 'auto' = by timing, or
    None = the decoder's default), ``fused`` (the lab's fused runtime), under torch.compile ``compile``
    (a mode, 'auto', or None = eager)."""
    chunk: int | str | None = None
    compile: str | None = None
    fused: bool = False
    graphs: bool = False
    subpixel: bool = False

    @property
    def searched(self) -> bool:
        return self.chunk == "auto" or self.compile == "auto"


def split_runtime(spec: str) -> tuple[str, Runtime | None]:
    """'wan2.1@chunk4' -> ('wan2.1', Runtime(chunk=4)); 'wan2.1@fast' -> chunk 'auto'; 'wan2.1@compile' ->
    compile 'default'; 'ltx-video@compile-auto' -> compile 'auto'; 'a@fused+chunk2' -> both;
    'wan2.1' -> ('wan2.1', None)."""

    name, at, suffix = spec.rpartition("@")
    if not at:
        return spec, None
    chunk, mode, fused, graphs, subpixel = None, None, False, False, False
    if suffix == "eager":
        return name, Runtime()
    for part in suffix.split("+"):
        if part == "fast" and chunk is None:
            chunk = "auto"
        elif part.startswith("chunk") and part[5:].isdigit() and int(part[5:]) >= 1 and chunk is None:
            chunk = int(part[5:])
        elif part == "fused" and not fused:
            fused = True
        elif part == "graphs" and not graphs:
            graphs = True
        elif part == "subpixel" and not subpixel:
            subpixel = True
        elif part == "compile" and mode is None:
            mode = "default"
        elif part.startswith("compile-") and part[8:] in MODES + ("auto",) and mode is None:
            mode = part[8:]
        else:
            raise LabError(f"unknown runtime '{part}' in '{spec}'; use NAME@chunkK (K >= 1 latent frames per call), "
                           f"NAME@fast (K chosen by timing), NAME@fused (the lab's fused kernels), NAME@fused+graphs "
                           f"(its steady steps as CUDA graphs), NAME@fused+subpixel (upsample + conv as one "
                           f"sub-pixel conv), NAME@compile or NAME@compile-MODE (MODE: "
                           f"{', '.join(MODES)}, or auto), each at most once, joined by '+'; or NAME@eager "
                           f"(diffusers' own modules, alone).")
    if graphs and not fused:
        raise LabError(f"'{spec}': graphs replays the fused runtime's static steps; write NAME@fused+graphs")
    if subpixel and not fused:
        raise LabError(f"'{spec}': subpixel is a part of the fused runtime; write NAME@fused+subpixel")
    return name, Runtime(chunk, mode, fused, graphs, subpixel)


def default_runtime(decoder) -> Runtime | None:
    """The runtime a decoding command gives ``decoder`` when its name has no runtime: ``@fused`` where its family
    makes the fused runtime the default on the decoder's device (``lab.runtime.fused.fused_by_default``: each
    family's plug-in says where, and why) and the decoder is neither fused nor compiled yet; else None (eager)."""
    if getattr(decoder, "fused", None) is None and not getattr(decoder, "compile_mode", None) \
            and fused_by_default(decoder):
        return Runtime(fused=True)
    return None


def apply_runtime(decoder, runtime: Runtime | None):
    """Install ``runtime``'s fixed parts on ``decoder`` (searched parts are left as they are). A part that
    does not apply to this decoder (chunks outside the Wan family, fusion where nothing is fused) is a
    no-op; ``runtime_note`` says why. Returns the decoder."""
    if runtime is None:
        return decoder
    if isinstance(runtime.chunk, int) and is_chunkable(decoder):
        set_chunk(decoder, runtime.chunk)
    if runtime.fused and is_fusable(decoder):
        set_fused(decoder, True, graphs=runtime.graphs, subpixel=runtime.subpixel)
    if runtime.compile not in (None, "auto"):
        compile_decoder(decoder, runtime.compile)
    return decoder


def runtime_note(decoder, runtime: Runtime | None) -> str | None:
    """Why a spec's chunk or fused part does nothing for ``decoder`` (None when every part applies)."""
    if runtime is None:
        return None
    notes = []
    if runtime.chunk is not None and not is_chunkable(decoder):
        part, what = (("@fast", "chunk 1, no search") if runtime.chunk == "auto"
                      else (f"@chunk{runtime.chunk}", "chunk 1"))
        notes.append(f"{part} does nothing for {decoder.name}: it has no per-chunk causal loop (Wan's feature "
                     f"cache) and decodes the whole clip in one call ({what})")
    if runtime.fused and not is_fusable(decoder):
        notes.append(f"@fused does nothing for {decoder.name}: {why_not_fusable(decoder)}; it runs eagerly")
    elif runtime.graphs and not getattr(decoder, "causal", False):
        notes.append(f"+graphs does nothing for {decoder.name}: it decodes whole clips, with no steady causal step "
                     f"to replay")
    elif runtime.graphs and decoder.device.type != "cuda":
        notes.append(f"+graphs does nothing on {decoder.device.type}: CUDA graphs need CUDA; it runs fused without")
    why = getattr(getattr(decoder, "fused", None), "why_no_subpixel", None)
    if runtime.subpixel and why:
        notes.append(f"+subpixel does nothing for {decoder.name}: {why}")
    return "; ".join(notes) or None


def fixed_spec(base: str, decoder) -> str:
    """The spec that loads ``decoder`` as it is now (after a search picked its chunk and compile mode)."""
    parts = ([f"chunk{decoder.chunk_frames}"] if decoder.chunk_frames > 1 else []) + \
        (["fused"] if getattr(decoder, "fused", None) is not None else []) + \
        (["graphs"] if getattr(getattr(decoder, "fused", None), "graphs", False) else []) + \
        (["subpixel"] if getattr(getattr(decoder, "fused", None), "subpixel", None) is not None else []) + \
        ([f"compile-{decoder.compile_mode}"] if decoder.compile_mode else [])
    return f"{base}@{'+'.join(parts)}" if parts else base
