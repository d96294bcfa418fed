"""Which VAE makes the latents a decoder decodes: its own encoder (a teacher VAE), the teacher a student or a
lightweight decoder records, or one the user names. ``lab eval`` and ``lab decode --video`` both ask here."""

from __future__ import annotations

import torch

from lab.errors import LabError
from lab.models.interface import VideoDecoder
from lab.models.registry import load_decoder


def latents_encoder(dec: VideoDecoder, teacher: str | VideoDecoder | None = None, *, spec: str | None = None,
                    weights: str | None = None, teacher_weights: str | None = None, device=None,
                    dtype: torch.dtype | None = None) -> VideoDecoder:
    """The VAE whose encoder makes ``dec``'s latents: ``teacher`` (a name, a folder or a VideoDecoder) when given,
    else ``dec`` itself for a teacher VAE, else the teacher ``dec`` records. ``spec`` and ``weights``: what ``dec``
    was loaded from, so that naming it as its own teacher reuses it (unless other ``teacher_weights`` are asked
    for); a decoder with random ``weights`` gets a random teacher unless ``teacher_weights`` say otherwise. A
    LabError names the fix when there is no such VAE, when it has no encoder, or when its latents are not the ones
    ``dec`` decodes."""
    if teacher is None:
        teacher = dec if dec.has_encoder and dec.family == "teacher" else dec.teacher_name
        if teacher is None:
            raise LabError(f"{dec.name} has no encoder and names no teacher; pass --teacher T (the VAE whose "
                           f"latents it decodes).")
    if teacher is dec or (isinstance(teacher, str) and teacher == spec and teacher_weights in (None, weights)):
        tea = dec
    else:
        if teacher_weights is None and weights == "random":
            # A random decoder's latents come from a random teacher: its default weights may be a download the
            # user did not ask for (the hub, for a full-size teacher).
            teacher_weights = "random"
        torch.manual_seed(0)  # random-init teachers (tests, --weights random) are the same in every process
        tea = load_decoder(teacher, weights=teacher_weights, device=device, dtype=dtype)
    if not tea.has_encoder:
        raise LabError(f"the teacher {tea.name} has no encoder, so it cannot make the latents; pass a teacher VAE.")
    if tea.geometry != dec.geometry:
        raise LabError(f"{dec.name} decodes {dec.geometry.channels}-channel latents with compression "
                       f"{dec.geometry.compression}, but {tea.name} makes {tea.geometry.channels}-channel latents "
                       f"with {tea.geometry.compression}; pair a decoder with its own teacher.")
    return tea
