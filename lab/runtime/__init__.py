"""Inference runtimes: faster ways to run the lab's decoders that give the same output as the reference
path (diffusers eager for the teachers) within a stated tolerance. ``chunked``: decoders with a causal
loop (Wan) run several latent frames per causal call instead of one. ``compiled``: torch.compile of the decoder's
modules, the mode chosen by timing."""

from lab.runtime.chunked import choose_chunk, chunk_bounds, is_chunkable, set_chunk
from lab.runtime.compiled import choose_compile_mode, compile_decoder

__all__ = ["choose_chunk", "choose_compile_mode", "chunk_bounds", "compile_decoder", "is_chunkable", "set_chunk"]
