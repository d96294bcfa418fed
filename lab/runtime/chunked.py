"""Chunked causal decoding: decoders with a per-chunk causal loop (the Wan family: teachers and the students
pruned from them, lab.families.wan.chunked) decode ``decoder.chunk_frames`` latent frames per causal call
instead of one. The same computation up to float summation order; faster where a call costs more than its
FLOPs (measured on CPU: the narrow mini-wan 2.8x with chunks of 2; full-size Wan decoders 0-7%; on a GPU,
where every call also pays kernel launches, time it with ``choose_chunk`` or ``bench NAME@fast``). Memory
grows with the chunk.

A decoder declares the capability with ``chunkable = True`` (its ``_decode_raw`` honours ``chunk_frames``);
this module sets and times it, family-agnostic."""

from __future__ import annotations

import statistics
import time

import torch

from lab.errors import LabError
from lab.runtime.timing import timed


def chunk_bounds(latent_frames: int, chunk: int) -> list[tuple[int, int]]:
    """[start, end) latent-frame ranges: the first frame alone (Wan's first chunk is special), then
    ``chunk`` frames per call."""
    if chunk < 1:
        raise LabError(f"chunk must be >= 1 latent frame, got {chunk}")
    if latent_frames < 1:
        raise LabError(f"nothing to decode: {latent_frames} latent frames")
    return [(0, 1)] + [(a, min(a + chunk, latent_frames)) for a in range(1, latent_frames, chunk)]


def is_chunkable(decoder) -> bool:
    """True for decoders with a per-chunk causal loop (they declare ``chunkable = True``)."""
    return bool(getattr(decoder, "chunkable", False))


def set_chunk(decoder, chunk: int):
    """Make ``decoder.decode`` (and ``decode_with_grad``) run ``chunk`` latent frames per call.
    ``chunk=1`` restores the reference path (diffusers' own loop for teachers). Returns the decoder."""
    if not is_chunkable(decoder):
        raise LabError(f"{decoder.name} has no per-chunk causal loop; chunked decoding applies to the Wan teachers and "
                       f"their students (LTX-Video and the lightweight decoders decode whole clips).")
    chunk_bounds(1, chunk)  # validates
    decoder.chunk_frames = int(chunk)
    return decoder


def choose_chunk(decoder, z: torch.Tensor, candidates=(1, 2, 3, 4, 6, 8), repeats: int = 3) -> dict:
    """Time ``decoder.decode(z)`` at each chunk size (interleaved repeats after one warm-up, synchronised,
    medians) and set the fastest. Returns {'chunk': best, 'seconds': {chunk: median}}. Candidates beyond
    the clip's length add nothing and are skipped."""

    if repeats < 1:
        raise LabError(f"repeats must be >= 1, got {repeats}")
    cands = sorted({int(c) for c in candidates if 1 <= int(c) <= max(1, z.shape[2] - 1)}) or [1]
    previous = getattr(decoder, "chunk_frames", 1)
    times: dict[int, list[float]] = {c: [] for c in cands}
    try:
        for c in cands:
            set_chunk(decoder, c)
            decoder.decode(z)  # warm-up: allocator and kernel selection for this shape
        for _ in range(repeats):
            for c in cands:
                set_chunk(decoder, c)
                times[c].append(timed(decoder.decode, z))
    except BaseException:
        set_chunk(decoder, previous)
        raise
    med = {c: statistics.median(ts) for c, ts in times.items()}
    best = min(med, key=med.get)
    set_chunk(decoder, best)
    return {"chunk": best, "seconds": med, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
            "latents_shape": list(z.shape), "device": str(z.device)}
