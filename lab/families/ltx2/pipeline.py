"""LTX-2's side of the diffusers facade (lab.models.diffusers_compat): LTX-2's VAE has LTX-Video's API and
normalisation, so a lab decoder of LTX-2 latents takes LTX-Video's facade (lab.families.ltx.pipeline), whose
encoder may be an ``AutoencoderKLLTX2Video``."""

from __future__ import annotations

from diffusers import AutoencoderKLLTX2Video

from lab.families.ltx.pipeline import LTXDiffusersVAE

LTXDiffusersVAE.add_teacher_class(AutoencoderKLLTX2Video)
