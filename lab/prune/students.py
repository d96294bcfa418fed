"""Student construction per family: the narrower model at the chosen widths, with the teacher's
selected filters copied and the dropped channels folded into the next layers.

A builder per Architecture, looked up through a registry (as Torch-Pruning dispatches per layer type)
rather than a switch on the family: a new family registers its builder next to its student class.
"""

from __future__ import annotations

from functools import partial
from typing import Callable


from lab.arch import LTX, LTX2, WAN, Architecture
from lab.arch.taef2 import TAEF2
from lab.arch.wan22 import WAN22
from lab.errors import ConfigError
from lab.models.students import ltx as ltx_student
from lab.models.students import ltx2 as ltx2_student
from lab.models.students.base import plain as _plain
from lab.models.students.wan import TEACHER_KEYS, WanStudentAdapter, WanStudentVAE
from lab.models.taef2 import TAEF2Model, TAEF2StudentAdapter
from lab.models.students.wan22 import Wan22StudentAdapter, Wan22StudentVAE
from lab.prune.ltx import transfer_ltx
from lab.prune.transfer import transfer

#: (teacher, groups, widths, kept, ratios, criterion, analysis, fold, ridge, fold_norms)
#:   -> (student VAE, student adapter class, transfer report)
StudentBuilder = Callable[..., tuple]
_BUILDERS: dict[str, StudentBuilder] = {}


def register_student_builder(arch: Architecture, builder: StudentBuilder) -> None:
    _BUILDERS[arch.name] = builder


def student_builder(arch: Architecture) -> StudentBuilder:
    if arch.name not in _BUILDERS:
        raise ConfigError(f"no pruned student is defined for {arch.title} teachers yet.")
    return _BUILDERS[arch.name]


def _build_wan_like(vae_cls, adapter_cls, teacher, groups, widths, kept, ratios, criterion, analysis, fold, ridge,
                    fold_norms):
    """Wan 2.1 and Wan 2.2 students: the same group roles (rows, rows_paired, RMS norms) and transfer; the
    student class differs (Wan 2.2's rebuilds its parameter-free DupUp3D shortcuts from ``kept`` itself)."""
    tvae = teacher.vae
    tc = {k: _plain(tvae.config[k]) for k in TEACHER_KEYS if k in tvae.config}
    # fold_norms: the norms of narrowed groups divide by the teacher's rms estimated from the kept
    # channels (lab.models.students.folded_norm) instead of a rescaled plain norm; full-width groups
    # keep the teacher's norm. Opt-in for Wan: it raises every criterion's PSNR (e.g. independence at
    # 50% of mini-wan up2/up3 36.7 -> 39.9 dB) but helps random selection more at 25% (see issue 4).
    folded = ([n for g in groups if g.name in kept and len(kept[g.name]) < g.width for n in g.norms]
              if fold_norms else [])
    svae = vae_cls(teacher=teacher.name, teacher_config=tc, widths=widths, kept=kept, ratios=ratios,
                   criterion=criterion, operators={}, patch_size=tc.get("patch_size"), folded_norms=folded)
    return svae, adapter_cls, transfer(tvae, svae, groups, kept, analysis, fold=fold, ridge=ridge)


build_wan_student = partial(_build_wan_like, WanStudentVAE, WanStudentAdapter)
build_wan22_student = partial(_build_wan_like, Wan22StudentVAE, Wan22StudentAdapter)


def _ltx_teacher_config(tvae, keys) -> dict:
    """What an LTX-Video or LTX-2 student records of its teacher, with the latent statistics (buffers, not
    config fields, in these classes)."""
    tc = {k: _plain(tvae.config[k]) for k in keys if k in tvae.config}
    tc["latents_mean"] = _plain(tvae.latents_mean.float().cpu())
    tc["latents_std"] = _plain(tvae.latents_std.float().cpu())
    return tc


def _build_ltx_like(vae_cls, adapter_cls, teacher_keys, arch, teacher, groups, widths, kept, ratios, criterion,
                    analysis, fold, ridge, fold_norms):
    """LTX-Video and LTX-2 students: the same channel map and transfer (lab.prune.ltx), whose norms of pruned
    groups are always folded (``fold_norms`` is Wan's opt-in); the upsampler merge needs the decoder's causal
    setting (a call argument in LTX-2, read off the convs in LTX-Video)."""
    tvae = teacher.vae
    tc = _ltx_teacher_config(tvae, teacher_keys)
    svae = vae_cls(teacher=teacher.name, teacher_config=tc, widths=widths, kept=kept, ratios=ratios,
                   criterion=criterion, operators={}, timestep_conditioning=bool(tc.get("timestep_conditioning")))
    report = transfer_ltx(tvae, svae, groups, kept, analysis, fold=fold, ridge=ridge, causal=arch.is_causal(tvae))
    return svae, adapter_cls, report


build_ltx_student = partial(_build_ltx_like, ltx_student.LTXStudentVAE, ltx_student.LTXStudentAdapter,
                            ltx_student.TEACHER_KEYS, LTX)
build_ltx2_student = partial(_build_ltx_like, ltx2_student.LTX2StudentVAE, ltx2_student.LTX2StudentAdapter,
                             ltx2_student.TEACHER_KEYS, LTX2)

register_student_builder(WAN, build_wan_student)
register_student_builder(LTX, build_ltx_student)
register_student_builder(LTX2, build_ltx2_student)
register_student_builder(WAN22, build_wan22_student)


def build_taef2_student(teacher, groups, widths, kept, ratios, criterion, analysis, fold, ridge, fold_norms):
    # The same model class at the chosen widths, without the encoder; no norms over pruned channels.
    c = teacher.vae.config
    svae = TAEF2Model(latent_channels=c.latent_channels, width=c.width, pool_width=c.pool_width, blocks=list(c.blocks),
                      pooled_stages=list(c.pooled_stages), with_encoder=False, widths=widths, kept=kept,
                      teacher=teacher.name, criterion=criterion, ratios=ratios, operators={})
    return svae, TAEF2StudentAdapter, transfer(teacher.vae, svae, groups, kept, analysis, fold=fold, ridge=ridge)


register_student_builder(TAEF2, build_taef2_student)
