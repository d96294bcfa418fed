"""LTX-2's catalog: the decoders the lab knows by name (weights as data) and how a plain diffusers
``AutoencoderKLLTX2Video`` folder loads."""

from __future__ import annotations

from diffusers import AutoencoderKLLTX2Video

from lab.families.ltx.student import flash_vaed_student_vae
from lab.families.ltx2.student import TEACHER_KEYS, LTX2StudentAdapter, LTX2StudentVAE
from lab.families.ltx2.teacher import LTX2_CONFIG, LTX2_TINY_CONFIG, LTX2DecoderAdapter
from lab.models.entries import register_flash_student, register_teacher
from lab.models.registry import register_folder_class
from lab.models.weights import load_diffusers_model

LTX2_HUB = ("Lightricks/LTX-2", "vae")

# Random weights unless asked for the hub's (--weights Lightricks/LTX-2, subfolder vae), a folder or a file:
# the VAE is 1.2B parameters (4.9 GB in fp32) and the lab's LTX-2 work runs on random weights.
register_teacher("ltx-2", AutoencoderKLLTX2Video, LTX2DecoderAdapter, LTX2_CONFIG, channels=128,
                 compression=(8, 32, 32), hub=LTX2_HUB, hub_by_default=False,
                 weights_text=f"random unless asked: --weights {LTX2_HUB[0]} (hub, subfolder {LTX2_HUB[1]}) | FOLDER "
                              f"| FILE",
                 description="LTX-2 video VAE decoder (diffusers AutoencoderKLLTX2Video, default config), causal, "
                             "3 residual up blocks")
register_flash_student("ltx-2", AutoencoderKLLTX2Video, LTX2_CONFIG,
                       lambda teacher, skeleton: flash_vaed_student_vae(teacher, skeleton, vae_class=LTX2StudentVAE,
                                                                        teacher_keys=TEACHER_KEYS),
                       LTX2StudentAdapter, channels=128, compression=(8, 32, 32),
                       what="LTX-2 (up1/up2 at 25%, flash-vaed operators)")
register_teacher("ltx-2-tiny", AutoencoderKLLTX2Video, LTX2DecoderAdapter, LTX2_TINY_CONFIG, channels=128,
                 compression=(8, 32, 32), weights_text="random (test config of the real class)",
                 description="LTX-2 architecture at decoder widths 64-8, one layer per block, for tests", tags=("test",))


def _load_folder(folder, config, device, dtype):
    vae = load_diffusers_model(AutoencoderKLLTX2Video, str(folder), config={}, hub_subfolder=None,
                               what="AutoencoderKLLTX2Video", device=device, dtype=dtype)
    return LTX2DecoderAdapter(folder.name, vae)


register_folder_class("AutoencoderKLLTX2Video", _load_folder)
