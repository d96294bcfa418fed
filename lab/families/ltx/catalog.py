"""LTX-Video's catalog: the decoders the lab knows by name (weights as data), what ``teacher train`` can train,
and how a plain diffusers ``AutoencoderKLLTXVideo`` folder loads."""

from __future__ import annotations

from diffusers import AutoencoderKLLTXVideo

from lab.families.ltx.student import LTXStudentAdapter, flash_vaed_student_vae
from lab.families.ltx.teacher import LTX09_CONFIG, LTX_TINY_CONFIG, LTXDecoderAdapter
from lab.models.entries import register_flash_student, register_shipped_student, register_teacher
from lab.models.registry import register_alias, register_folder_class
from lab.models.weights import load_diffusers_model
from lab.teachers.presets import Preset, register_teacher_preset

LTX_HUB = ("Lightricks/LTX-Video", "vae")

# The lab's mini teacher: the same class and latent geometry as the released VAE, reduced widths 32-64 (see
# data/checkpoints/mini-ltx/README.md for how the shipped weights were trained). The fp16 weights stay under
# 10 MiB (the repository carries them, and a device run returns files of at most 16 MiB). Trained on a GPU by
# scripts/gpu/run.sh.
MINI_LTX_CONFIG = {
    "block_out_channels": (32, 64, 64, 64),
    "decoder_block_out_channels": (32, 64, 64, 64),
    "layers_per_block": (1, 1, 1, 1, 1),
    "decoder_layers_per_block": (1, 1, 1, 1, 1),
}

register_teacher("ltx-video", AutoencoderKLLTXVideo, LTXDecoderAdapter, LTX09_CONFIG, channels=128,
                 compression=(8, 32, 32), hub=LTX_HUB,
                 weights_text=f"hub {LTX_HUB[0]} (subfolder {LTX_HUB[1]}); or --weights FOLDER|FILE; or --weights random",
                 description="LTX-Video 0.9 VAE decoder (diffusers AutoencoderKLLTXVideo, default config)")
register_teacher("mini-ltx", AutoencoderKLLTXVideo, LTXDecoderAdapter, MINI_LTX_CONFIG, channels=128,
                 compression=(8, 32, 32), checkpoint="mini-ltx",
                 weights_text="data/checkpoints/mini-ltx (trained by the lab on a GPU, real clips + photos)",
                 description="the lab's trained mini LTX-architecture VAE (widths 32-64)", tags=("mini",))
# The wide teacher was 'mini-ltx-w32' until it became the default: a decoder saved then still finds its teacher.
register_alias("mini-ltx-w32", "mini-ltx")
register_teacher("ltx-video-tiny", AutoencoderKLLTXVideo, LTXDecoderAdapter, LTX_TINY_CONFIG, channels=128,
                 compression=(8, 32, 32), weights_text="random (test config of the real class)",
                 description="LTX-Video architecture at widths 8-32, one layer per block, for tests", tags=("test",))
register_flash_student("ltx-video", AutoencoderKLLTXVideo, LTX09_CONFIG, flash_vaed_student_vae, LTXStudentAdapter,
                       channels=128, compression=(8, 32, 32),
                       what="LTX-Video 0.9 (up2/up3 at 25%, flash-vaed operators)")
register_shipped_student("mini-ltx-flash", "Flash-VAED student of mini-ltx: keep=flash-vaed (independence-aware), "
                                           "flash-vaed operators, three-phase distillation",
                         channels=128, compression=(8, 32, 32))

# What teacher training can train; the defaults suit a 2-core CPU (the GPU run sets its own).
_TRAIN = {"frames": 9, "crop": 64, "batch": 2}
register_teacher_preset("mini-ltx", Preset(AutoencoderKLLTXVideo, MINI_LTX_CONFIG, 8, 32, _TRAIN, target_psnr=26.0))
register_teacher_preset("ltx-video-tiny", Preset(AutoencoderKLLTXVideo, LTX_TINY_CONFIG, 8, 32, _TRAIN))  # trainer tests


def _load_folder(folder, config, device, dtype):
    vae = load_diffusers_model(AutoencoderKLLTXVideo, str(folder), config={}, hub_subfolder=None,
                               what="AutoencoderKLLTXVideo", device=device, dtype=dtype)
    return LTXDecoderAdapter(folder.name, vae)


register_folder_class("AutoencoderKLLTXVideo", _load_folder)
