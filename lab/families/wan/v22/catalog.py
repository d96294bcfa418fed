"""Wan 2.2's catalog and pruning: the named decoders (random weights unless asked: the 5B VAE's weights are
the hub's), how pruning builds its students (Wan 2.1's transfer with Wan 2.2's student class), and how a
plain diffusers folder of a residual ``AutoencoderKLWan`` loads."""

from __future__ import annotations

from functools import partial

from diffusers import AutoencoderKLWan

from lab.families.wan.build import build_wan_like
from lab.families.wan.catalog import PARTS
from lab.families.wan.v22.arch import WAN22
from lab.families.wan.v22.student import Wan22StudentAdapter, Wan22StudentVAE
from lab.families.wan.v22.teacher import WAN22_CONFIG, WAN22_HUB, WAN22_TINY_CONFIG, Wan22DecoderAdapter
from lab.models.entries import register_teacher
from lab.models.registry import register_folder_class
from lab.models.weights import load_diffusers_model
from lab.prune.students import register_student_builder

register_teacher("wan2.2", AutoencoderKLWan, Wan22DecoderAdapter, WAN22_CONFIG, channels=48, compression=(4, 16, 16),
                 decoder_parts=PARTS, hub=WAN22_HUB, hub_by_default=False,
                 weights_text=f"random unless asked: --weights {WAN22_HUB[0]} (hub, subfolder {WAN22_HUB[1]}) | FOLDER "
                              f"| FILE",
                 description="Wan 2.2 TI2V-5B VAE decoder (diffusers AutoencoderKLWan, is_residual, 48 channels, "
                             "patch size 2), causal")
register_teacher("wan2.2-tiny", AutoencoderKLWan, Wan22DecoderAdapter, WAN22_TINY_CONFIG, channels=48,
                 compression=(4, 16, 16), decoder_parts=PARTS, weights_text="random (test config of the real class)",
                 description="Wan 2.2 architecture at decoder widths 64-16, for tests", tags=("test",))

register_student_builder(WAN22, partial(build_wan_like, Wan22StudentVAE, Wan22StudentAdapter))


def _load_folder(folder, config, device, dtype):
    vae = load_diffusers_model(AutoencoderKLWan, str(folder), config={}, hub_subfolder=None, what="AutoencoderKLWan",
                               device=device, dtype=dtype)
    return Wan22DecoderAdapter(folder.name, vae)


# The same diffusers class as Wan 2.1: a residual config (is_residual) is Wan 2.2's, tried first.
register_folder_class("AutoencoderKLWan", _load_folder, matches=lambda cfg: bool(cfg.get("is_residual")), first=True)
