"""How a pruned LTX-2 student is built from its teacher: LTX-Video's builder (lab.families.ltx.build: the same
channel map and transfer, residual upsamplers merged into their convs) with LTX-2's student classes, config keys
and upsampler class."""

from __future__ import annotations

from functools import partial

from diffusers.models.autoencoders.autoencoder_kl_ltx2 import LTX2VideoUpsampler3d

from lab.families.ltx.build import build_ltx_like
from lab.families.ltx2.arch import LTX2
from lab.families.ltx2.student import TEACHER_KEYS, LTX2StudentAdapter, LTX2StudentVAE
from lab.prune.students import register_student_builder

build_ltx2_student = partial(build_ltx_like, LTX2StudentVAE, LTX2StudentAdapter, TEACHER_KEYS, LTX2,
                             (LTX2VideoUpsampler3d,))
register_student_builder(LTX2, build_ltx2_student)
