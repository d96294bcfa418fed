"""Decoders: the one interface, the registry of named decoders, teacher adapters."""

from lab.models.interface import DecoderStream, LatentGeometry, VideoDecoder
from lab.models.registry import get_entry, list_entries, load_decoder, register

# The built-in decoders and the adapters that reload saved folders register themselves here, after the
# registry exists (the catalog imports it), so the registry never imports what registers into it.
import lab.models.catalog  # noqa: E402,F401

__all__ = ["DecoderStream", "LatentGeometry", "VideoDecoder", "get_entry", "list_entries", "load_decoder",
           "register"]
