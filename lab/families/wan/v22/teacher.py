"""The Wan 2.2 teacher: diffusers' ``AutoencoderKLWan`` with ``is_residual=True`` (the TI2V-5B VAE), behind
the Wan adapter with the Wan 2.2 Architecture (lab.families.wan.v22.arch) as its ``arch``.

Everything else is Wan 2.1's: latent normalisation from ``config.latents_mean``/``latents_std``, the
causal stream (lab.families.wan.teacher.WanStream) and chunked decoding (lab.families.wan.chunked), which both
unpatchify the decoder's 12 output channels (3 colours x 2x2 pixels) as diffusers' ``_decode`` does.
"""

from __future__ import annotations

from lab.families.wan.chunked import decode_wan_chunked
from lab.families.wan.teacher import WanDecoderAdapter
from lab.families.wan.v22.arch import WAN22
from lab.models.registry import register_adapter

# The 48 per-channel latent statistics of the Wan 2.2 VAE, as diffusers' conversion script
# (scripts/convert_wan_to_diffusers.py, vae22_diffusers_config) writes them into the released config.
WAN22_LATENTS_MEAN = [
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542, 0.2813, 0.0891,
    0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
    -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230, -0.0313, -0.1649, 0.0117, 0.0723,
    -0.2839, -0.2083, -0.0520, 0.3748, 0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
]
WAN22_LATENTS_STD = [
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894, 1.0901,
    0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
    0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093, 0.5709, 0.6065, 0.6415, 0.4944,
    0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
]

# Wan-AI/Wan2.2-TI2V-5B-Diffusers vae/config.json (the keys that differ from AutoencoderKLWan's defaults;
# dim_mult [1, 2, 4, 4], num_res_blocks 2, temperal_downsample [False, True, True] are the defaults).
WAN22_CONFIG: dict = {
    "base_dim": 160, "decoder_base_dim": 256, "z_dim": 48, "in_channels": 12, "out_channels": 12,
    "is_residual": True, "patch_size": 2, "scale_factor_spatial": 16, "scale_factor_temporal": 4,
    "latents_mean": WAN22_LATENTS_MEAN, "latents_std": WAN22_LATENTS_STD,
}
# The same class and latent geometry (48 channels, 4x16x16) at decoder widths 64-16, for tests.
WAN22_TINY_CONFIG: dict = {**WAN22_CONFIG, "base_dim": 4, "decoder_base_dim": 16}

WAN22_HUB = ("Wan-AI/Wan2.2-TI2V-5B-Diffusers", "vae")


class Wan22DecoderAdapter(WanDecoderAdapter):
    """Any ``AutoencoderKLWan`` with residual up blocks (``is_residual=True``): Wan 2.2 TI2V-5B, tiny configs."""

    adapter_kind = "wan2.2"
    arch = WAN22

    def _decode_raw(self, z):
        # The lab's causal loop (lab.families.wan.chunked) for every chunk size, including 1: it applies
        # post_quant_conv per chunk as a stream does, so decode() equals the stream bit for bit; diffusers'
        # own decode() (post_quant_conv over the whole clip) differs from both by ~1e-6 on 48 channels.
        return decode_wan_chunked(self.vae, z, self.chunk_frames).clamp(-1.0, 1.0)


register_adapter(Wan22DecoderAdapter.adapter_kind, Wan22DecoderAdapter)
