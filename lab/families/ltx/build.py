"""How a pruned LTX-Video student is built from its teacher (lab.prune asks the family's registered builder): the
student model at the chosen widths, then the teacher's kept filters, the least-squares fold of the dropped
channels and the merged residual upsamplers (lab.families.ltx.transfer). LTX-2 (lab.families.ltx2) builds
through the same function with its own student classes."""

from __future__ import annotations

from functools import partial

from diffusers.models.autoencoders.autoencoder_kl_ltx import LTXVideoUpsampler3d

from lab.families.ltx.arch import LTX
from lab.families.ltx.student import TEACHER_KEYS, LTXStudentAdapter, LTXStudentVAE
from lab.families.ltx.transfer import transfer_ltx
from lab.models.students.base import plain as _plain
from lab.prune.students import register_student_builder


def ltx_teacher_config(tvae, keys, arch=LTX) -> dict:
    """What an LTX-Video or LTX-2 student records of its teacher, with the latent statistics (buffers, not
    config fields, in these classes: ``arch.latent_stats`` reads them)."""
    tc = {k: _plain(tvae.config[k]) for k in keys if k in tvae.config}
    tc["latents_mean"], tc["latents_std"], _ = arch.latent_stats(tvae)
    return tc


def build_ltx_like(vae_cls, adapter_cls, teacher_keys, arch, upsamplers, teacher, groups, widths, kept, ratios,
                   criterion, analysis, fold, ridge, fold_norms):
    """LTX-Video and LTX-2 students: the same channel map and transfer (lab.families.ltx.transfer), whose norms
    of pruned groups are always folded (``fold_norms`` is Wan's opt-in); the upsampler merge needs the
    decoder's causal setting (a call argument in LTX-2, read off the convs in LTX-Video) and the family's
    upsampler classes."""
    tvae = teacher.vae
    tc = ltx_teacher_config(tvae, teacher_keys, arch)
    svae = vae_cls(teacher=teacher.name, teacher_config=tc, widths=widths, kept=kept, ratios=ratios,
                   criterion=criterion, operators={}, timestep_conditioning=bool(tc.get("timestep_conditioning")))
    report = transfer_ltx(tvae, svae, groups, kept, analysis, fold=fold, ridge=ridge, causal=arch.is_causal(tvae),
                          upsamplers=upsamplers)
    return svae, adapter_cls, report


build_ltx_student = partial(build_ltx_like, LTXStudentVAE, LTXStudentAdapter, TEACHER_KEYS, LTX,
                            (LTXVideoUpsampler3d,))
register_student_builder(LTX, build_ltx_student)
