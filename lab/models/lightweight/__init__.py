"""Lightweight decoders trained from scratch against a frozen encoder (METHOD.md section 2):
TAE-192, an EfficientViT (DC-AE style) decoder and TAE-Temporal, for any latent space. Importing
this package registers their adapter, so ``load_decoder(folder)`` reloads a saved one."""

from lab.models.lightweight.adapter import LightweightAdapter, LightweightStream
from lab.models.lightweight.effvit import EfficientViTVideoDecoder
from lab.models.lightweight.tae import TinyVideoDecoder
from lab.models.registry import register_adapter

register_adapter(LightweightAdapter.adapter_kind, LightweightAdapter)

__all__ = ["EfficientViTVideoDecoder", "LightweightAdapter", "LightweightStream", "TinyVideoDecoder"]
