"""TAEF2 (madebyollin/taesd, MIT: the tiny autoencoder for FLUX.2's latent space, a real decoder the lab did not
train, and the lab's pruned students of it), as one plug-in. Importing it registers:

- ``arch``: the Architecture (TAESD's stage map and channel groups; no operator plans: its convs are 2D);
- ``model``: the model class (teacher and students are one class at different widths) and the released weights;
- ``adapters``: the teacher and student adapters (frame-by-frame decoding);
- ``build``: how pruning builds a student;
- ``catalog``: the named decoder ``taef2``.
"""

from lab.families.taef2 import arch, model, adapters, build, catalog  # noqa: F401
from lab.families.taef2.adapters import GEOMETRY, TAEF2DecoderAdapter, TAEF2StudentAdapter
from lab.families.taef2.arch import TAEF2, TAEF2_POOLED, TAESD_BLOCKS, TAEF2Architecture, decoder_layout, taef2_groups
from lab.families.taef2.build import build_taef2_student
from lab.families.taef2.model import DECODER_FILE, ENCODER_FILE, TAEF2Model, full_widths, load_released

__all__ = ["DECODER_FILE", "ENCODER_FILE", "GEOMETRY", "TAEF2", "TAEF2Architecture", "TAEF2DecoderAdapter",
           "TAEF2Model", "TAEF2StudentAdapter", "TAEF2_POOLED", "TAESD_BLOCKS", "build_taef2_student",
           "decoder_layout", "full_widths", "load_released", "taef2_groups"]
