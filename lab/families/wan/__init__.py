"""Wan 2.1 (diffusers' ``AutoencoderKLWan``: the released VAE, the lab's mini-wan, tiny test configs, and the
lab's pruned students of it), as one plug-in. Importing it registers:

- ``arch``: the Architecture (stage map, channel groups, Flash-VAED widths and plans, latent statistics);
- ``layers``: its causal conv's reader for operators, profiler op types, analysis norms, fused norm kernel;
- ``teacher`` / ``chunked``: the teacher adapter, its causal stream, the chunked decode loop;
- ``student`` / ``build``: the pruned student model and adapter, and how pruning builds it;
- ``fused``: its fused runtime (lab.runtime.fused);
- ``pipeline``: its diffusers facade (``AutoencoderKLWan``'s API);
- ``catalog``: named decoders, trainable presets, plain-folder loading;
- ``v22``: Wan 2.2's residual VAE, which extends all of the above.
"""

from lab.families.wan import arch, layers, teacher, student, build, fused, pipeline, catalog  # noqa: F401
from lab.families.wan import v22  # noqa: F401,E402  (extends the modules above)
from lab.families.wan.arch import WAN, WanArchitecture, wan_groups
from lab.families.wan.student import (TEACHER_KEYS, WanFoldedRMSNorm, WanStudentAdapter, WanStudentVAE,
                                      teacher_widths)
from lab.families.wan.teacher import WAN21_CONFIG, WAN_TINY_CONFIG, WanDecoderAdapter, WanStream, wan_geometry

__all__ = ["TEACHER_KEYS", "WAN", "WAN21_CONFIG", "WAN_TINY_CONFIG", "WanArchitecture", "WanDecoderAdapter",
           "WanFoldedRMSNorm", "WanStream", "WanStudentAdapter", "WanStudentVAE", "teacher_widths", "wan_geometry",
           "wan_groups"]
