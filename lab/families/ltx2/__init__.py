"""LTX-2 (diffusers' ``AutoencoderKLLTX2Video``: the released LTX-2 video VAE, tiny test configs, and the lab's
pruned students of it), as one plug-in that extends LTX-Video's (lab.families.ltx: the channel map, the
student's resnet and decoder narrowing, the weight transfer, the adapters). Importing it registers:

- ``arch``: the Architecture (three up blocks, causality from the decoder, a frame cache for operators);
- ``layers``: its causal conv's reader for operators (causal per call), profiler op types, analysis norms;
- ``teacher`` / ``stream``: the teacher adapter and its causal chunked stream;
- ``student`` / ``build``: the pruned student model and adapter, and how pruning builds it;
- ``pipeline``: its VAE class as a teacher of LTX-Video's diffusers facade;
- ``catalog``: named decoders and plain-folder loading;
- ``fused``: its fused runtime (``NAME@fused``) and the fused kernels of its norms.
"""

from lab.families.ltx2 import arch, layers, stream, teacher, student, build, pipeline, catalog, fused  # noqa: F401
from lab.families.ltx2.arch import LTX2, LTX2Architecture
from lab.families.ltx2.build import build_ltx2_student
from lab.families.ltx2.catalog import LTX2_HUB
from lab.families.ltx2.student import (TEACHER_KEYS, LTX2FoldedRMSNorm, LTX2RMSNorm, LTX2StudentAdapter,
                                       LTX2StudentVAE, teacher_widths)
from lab.families.ltx2.teacher import LTX2_CONFIG, LTX2_TINY_CONFIG, LTX2DecoderAdapter, LTX2Stream, ltx2_geometry

__all__ = ["LTX2", "LTX2Architecture", "LTX2DecoderAdapter", "LTX2FoldedRMSNorm", "LTX2RMSNorm", "LTX2Stream",
           "LTX2StudentAdapter", "LTX2StudentVAE", "LTX2_CONFIG", "LTX2_HUB", "LTX2_TINY_CONFIG", "TEACHER_KEYS",
           "build_ltx2_student", "ltx2_geometry", "teacher_widths"]
