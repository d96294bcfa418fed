"""Decoders: the one interface, the registry of named decoders (filled by the VAE families, lab/families, and
by the lab's own lightweight decoders), and the helpers families declare their entries with."""

from lab.models.interface import DecoderStream, LatentGeometry, VideoDecoder
from lab.models.registry import get_entry, list_entries, load_decoder, load_for_decoding, register

# The lightweight decoders are the lab's own models, not a VAE family: they register here, after the registry
# exists, so the registry never imports what registers into it.
from lab.models.lightweight.variants import register_all as _register_lightweight  # noqa: E402

_register_lightweight()

__all__ = ["DecoderStream", "LatentGeometry", "VideoDecoder", "get_entry", "list_entries", "load_decoder",
           "load_for_decoding", "register"]
