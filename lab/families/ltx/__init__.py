"""LTX-Video (diffusers' ``AutoencoderKLLTXVideo``: the released 0.9 VAE and later, the lab's mini-ltx, tiny test
configs, and the lab's pruned students of it), as one plug-in. Importing it registers:

- ``arch``: the Architecture (stage map, channel groups, Flash-VAED widths and plans, latent statistics);
- ``layers``: its causal conv's reader for operators, profiler op types;
- ``teacher``: the teacher adapter (whole-clip decoding, timestep conditioning);
- ``student`` / ``transfer`` / ``build``: the pruned student model and adapter, how a teacher's weights move
  into it (merged residual upsamplers), and how pruning builds it;
- ``fused``: its fused runtime (lab.runtime.fused);
- ``pipeline``: its diffusers facade (``AutoencoderKLLTXVideo``'s API);
- ``catalog``: named decoders, trainable presets, plain-folder loading.

LTX-2 (lab.families.ltx2) extends it.
"""

from lab.families.ltx import arch, layers, teacher, student, transfer, build, fused, pipeline, catalog  # noqa: F401
from lab.families.ltx.arch import LTX, LTXArchitecture, ltx_groups
from lab.families.ltx.build import build_ltx_student
from lab.families.ltx.catalog import MINI_LTX_CONFIG
from lab.families.ltx.fused import FusedLTX
from lab.families.ltx.pipeline import LTXDiffusersVAE
from lab.families.ltx.student import (TEACHER_KEYS, LTXStudentAdapter, LTXStudentResnetBlock3d, LTXStudentVAE,
                                      flash_vaed_student_vae, teacher_widths)
from lab.families.ltx.teacher import LTX09_CONFIG, LTX_TINY_CONFIG, LTXDecoderAdapter
from lab.families.ltx.transfer import merged_upsampler_weight, transfer_ltx

__all__ = ["FusedLTX", "LTX", "LTX09_CONFIG", "LTXArchitecture", "LTXDecoderAdapter", "LTXDiffusersVAE",
           "LTXStudentAdapter", "LTXStudentResnetBlock3d", "LTXStudentVAE", "LTX_TINY_CONFIG", "MINI_LTX_CONFIG",
           "TEACHER_KEYS", "build_ltx_student", "flash_vaed_student_vae", "ltx_groups", "merged_upsampler_weight",
           "teacher_widths", "transfer_ltx"]
