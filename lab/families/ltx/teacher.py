"""LTX-Video's teacher: any ``AutoencoderKLLTXVideo`` behind the lab's decoder interface (LTX-Video 0.9 and later,
the lab's mini-ltx, tiny test configs)."""

from __future__ import annotations

from diffusers import AutoencoderKLLTXVideo

from lab.families.ltx.arch import LTX
from lab.models.adapters import VAETeacherAdapter
from lab.models.interface import LatentGeometry
from lab.models.registry import register_adapter

# The diffusers defaults *are* the released model: the LTX-Video 0.9 VAE (decoder 238.8M parameters).
LTX09_CONFIG: dict = {}
# A tiny config of the same class and latent geometry, for tests and quick experiments: every structural
# feature is kept (depth-to-space upsamplers, RMS norms, 128 latent channels); only widths and depths shrink.
LTX_TINY_CONFIG = {
    "block_out_channels": (8, 16, 32, 32),
    "decoder_block_out_channels": (8, 16, 32, 32),
    "layers_per_block": (1, 1, 1, 1, 1),
    "decoder_layers_per_block": (1, 1, 1, 1, 1),
}


class LTXDecoderAdapter(VAETeacherAdapter):
    """Any ``AutoencoderKLLTXVideo`` (LTX-Video 0.9 and later, the lab's mini-ltx, tiny configs).

    Normalization as LTX pipelines apply it: raw = z * latents_std / scaling_factor + latents_mean.
    The decoder is not causal (it sees all latent frames at once), so there is no ``stream()``.
    Models with timestep conditioning (0.9.1+) are decoded at ``decode_timestep`` (default 0.0, the
    pipelines' default) without added noise.
    """

    vae_class = AutoencoderKLLTXVideo
    causal = False
    adapter_kind = "ltx"
    arch = LTX

    def __init__(self, name: str, vae: AutoencoderKLLTXVideo, family: str = "teacher",
                 decode_timestep: float = 0.0):
        # A model on the meta device (lab trace) has no statistics to read: identity normalisation.
        stats = (None, None) if vae.latents_mean.is_meta else (vae.latents_mean.float().cpu(),
                                                               vae.latents_std.float().cpu())
        super().__init__(name, vae, family, self._geometry(vae), *stats, vae.config.scaling_factor)
        self.decode_timestep = decode_timestep

    @staticmethod
    def _geometry(vae) -> LatentGeometry:
        return LatentGeometry(vae.config.latent_channels,
                              (vae.temporal_compression_ratio, vae.spatial_compression_ratio,
                               vae.spatial_compression_ratio))

    def decoder_modules(self):
        return [self.vae.decoder]

    def _decode_raw(self, z):
        return self.arch.decode_raw(self.vae, z, self.decode_timestep)

    def _encode_raw(self, video, sample, generator):
        dist = self.vae.encode(video).latent_dist
        return dist.sample(generator) if sample else dist.mode()


register_adapter(LTXDecoderAdapter.adapter_kind, LTXDecoderAdapter)
