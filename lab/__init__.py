"""VAED Lab: make the VAE decoders of video diffusion models fast, and show how.

The method flows one way: analysis -> prune -> ops (operator swap) -> distill -> eval -> runtime.
Data flows one way: clips -> teacher encode -> latents -> decoders -> metrics.
"""

__version__ = "0.1.0"
