"""TAEF2's teacher and student adapters: the released TAEF2 (or a random one of its layout) and its pruned
students behind the lab's decoder interface, decoded frame by frame (lab.families.taef2.model)."""

from __future__ import annotations

from lab.families.taef2.arch import TAEF2
from lab.families.taef2.model import TAEF2Model
from lab.models.adapters import VAETeacherAdapter
from lab.models.interface import LatentGeometry
from lab.models.registry import register_adapter
from lab.models.students.base import StudentAdapter

GEOMETRY = LatentGeometry(32, (1, 8, 8))


class _FrameDecoding:
    """What the teacher and student adapters share: the decoder Sequential, decoded frame by frame."""

    causal = False
    arch = TAEF2

    def decoder_modules(self):
        return [self.vae.decoder]

    def _decode_raw(self, z):
        return self.vae.decode(z).sample


class TAEF2DecoderAdapter(_FrameDecoding, VAETeacherAdapter):
    """The released TAEF2 (or a random one of its layout) as a frame-by-frame video teacher: raw latents
    are its latents (mean 0, std 1), T latent frames decode to T frames."""

    adapter_kind = "taef2"
    vae_class = TAEF2Model

    def __init__(self, name: str, vae: TAEF2Model, family: str = "teacher"):
        super().__init__(name, vae, family, GEOMETRY)

    def _encode_raw(self, video, sample, generator):
        return self.vae.encode(video)  # deterministic: no posterior to sample


class TAEF2StudentAdapter(_FrameDecoding, StudentAdapter):
    """A pruned TAEF2 decoder (``TAEF2Model`` at narrower widths, no encoder)."""

    adapter_kind = "taef2-student"
    vae_class = TAEF2Model

    def __init__(self, name: str, vae: TAEF2Model):
        super().__init__(name, GEOMETRY)
        self.vae = vae


register_adapter(TAEF2DecoderAdapter.adapter_kind, TAEF2DecoderAdapter)
register_adapter(TAEF2StudentAdapter.adapter_kind, TAEF2StudentAdapter)
