"""The VAE families the lab knows, one plug-in package each (lab.plugins): ``wan`` (Wan 2.1, and Wan 2.2's
residual VAE in ``wan.v22``: the same diffusers classes), ``ltx`` (LTX-Video), ``ltx2`` (LTX-2) and ``taef2``
(the tiny FLUX.2 image autoencoder, a real decoder the lab did not train). Each package declares everything
family-specific and registers it where the rest of the lab looks it up; nothing outside a family's package
names its diffusers classes (tests/families/test_conformance.py checks it, and runs every registered family
through the same checks)."""
