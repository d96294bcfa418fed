"""Wan 2.1's catalog: the decoders the lab knows by name (weights as data), what ``teacher train`` can train,
and how a plain diffusers ``AutoencoderKLWan`` folder loads."""

from __future__ import annotations

from diffusers import AutoencoderKLWan

from lab.families.wan.student import WanStudentAdapter, flash_vaed_student_vae
from lab.families.wan.teacher import WAN21_CONFIG, WAN_TINY_CONFIG, WanDecoderAdapter
from lab.models.entries import register_flash_student, register_shipped_student, register_teacher
from lab.models.registry import register_alias, register_folder_class
from lab.models.weights import load_diffusers_model
from lab.teachers.presets import Preset, register_teacher_preset

WAN_HUB = ("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "vae")
#: the VAE's attributes that are its decoder (parameter counts, MACs)
PARTS = ("post_quant_conv", "decoder")

# The lab's mini teacher: the same class and latent geometry as the released VAE, reduced widths (see
# data/checkpoints/mini-wan/README.md for how the shipped weights were trained). Base width 32: at 12.5% its
# narrowest pruned stage (up3, 32 channels) keeps 4 channels, so a pruning comparison measures selection, not
# noise. The deep stages stay at 64 channels (dim_mult 1,2,2,2 rather than 1,2,4,4): the high-resolution stages,
# where decoding spends its time and where Flash-VAED prunes, are widened, and the fp16 weights stay under
# 10 MiB (the repository carries them, and a device run returns files of at most 16 MiB). Trained on a GPU by
# scripts/gpu/run.sh.
MINI_WAN_CONFIG = {"base_dim": 32, "decoder_base_dim": 32, "z_dim": 16, "dim_mult": [1, 2, 2, 2]}

register_teacher("wan2.1", AutoencoderKLWan, WanDecoderAdapter, WAN21_CONFIG, channels=16, compression=(4, 8, 8),
                 decoder_parts=PARTS, hub=WAN_HUB,
                 weights_text=f"hub {WAN_HUB[0]} (subfolder {WAN_HUB[1]}); or --weights FOLDER|FILE; or --weights random",
                 description="Wan 2.1 VAE decoder (diffusers AutoencoderKLWan, default config), causal 3D convs")
register_teacher("mini-wan", AutoencoderKLWan, WanDecoderAdapter, MINI_WAN_CONFIG, channels=16,
                 compression=(4, 8, 8), decoder_parts=PARTS, checkpoint="mini-wan",
                 weights_text="data/checkpoints/mini-wan (trained by the lab on real clips + photos: on a GPU, its decoder "
                              "then on CPU; its README.md gives the minutes)",
                 description="the lab's trained mini Wan-architecture VAE (base width 32: up3 keeps 4 channels at "
                             "12.5%), the embedded default", tags=("mini",))
# The wide teacher was 'mini-wan-w32' until it became the default: a decoder saved then still finds its teacher.
register_alias("mini-wan-w32", "mini-wan")
register_teacher("wan2.1-tiny", AutoencoderKLWan, WanDecoderAdapter, WAN_TINY_CONFIG, channels=16,
                 compression=(4, 8, 8), decoder_parts=PARTS, weights_text="random (test config of the real class)",
                 description="Wan 2.1 architecture at base width 8, for tests", tags=("test",))
register_flash_student("wan2.1", AutoencoderKLWan, WAN21_CONFIG, flash_vaed_student_vae, WanStudentAdapter,
                       channels=16, compression=(4, 8, 8), what="Wan 2.1 (up2/up3 at 12.5%, flash-vaed operators)")
register_shipped_student("mini-wan-flash", "Flash-VAED student of mini-wan: up2/up3 at 12.5% (independence-aware), "
                                           "flash-vaed operators, three-phase distillation")

# What teacher training can train; the defaults suit a 2-core CPU (the GPU run sets its own).
_TRAIN = {"frames": 5, "crop": 48, "batch": 4}
register_teacher_preset("mini-wan", Preset(AutoencoderKLWan, MINI_WAN_CONFIG, 4, 8, _TRAIN, target_psnr=28.0))
register_teacher_preset("wan2.1-tiny", Preset(AutoencoderKLWan, WAN_TINY_CONFIG, 4, 8, _TRAIN))  # trainer tests


def _load_folder(folder, config, device, dtype):
    vae = load_diffusers_model(AutoencoderKLWan, str(folder), config={}, hub_subfolder=None, what="AutoencoderKLWan",
                               device=device, dtype=dtype)
    return WanDecoderAdapter(folder.name, vae)


register_folder_class("AutoencoderKLWan", _load_folder)
