"""Wan 2.2 (the TI2V-5B VAE: diffusers' ``AutoencoderKLWan`` with residual up blocks and patch size 2), part of
the Wan family: it extends Wan 2.1's Architecture, adapters and student, and registers its own (arch,
teacher, student, catalog, and its fused runtime: ``fused``)."""

from lab.families.wan.v22 import arch, teacher, student, catalog, fused  # noqa: F401
from lab.families.wan.v22.arch import WAN22, Wan22Architecture, wan22_groups
from lab.families.wan.v22.student import Wan22StudentAdapter, Wan22StudentVAE
from lab.families.wan.v22.teacher import WAN22_CONFIG, WAN22_HUB, WAN22_TINY_CONFIG, Wan22DecoderAdapter

__all__ = ["WAN22", "WAN22_CONFIG", "WAN22_HUB", "WAN22_TINY_CONFIG", "Wan22Architecture", "Wan22DecoderAdapter",
           "Wan22StudentAdapter", "Wan22StudentVAE", "wan22_groups"]
