"""Decoders: the one interface, the registry of named decoders, teacher adapters."""

from lab.models.interface import DecoderStream, LatentGeometry, VideoDecoder
from lab.models.registry import get_entry, list_entries, load_decoder, register

__all__ = ["DecoderStream", "LatentGeometry", "VideoDecoder", "get_entry", "list_entries", "load_decoder",
           "register"]
