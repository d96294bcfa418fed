"""How a pruned Wan student is built from its teacher (lab.prune asks the family's registered builder): the
student model at the chosen widths, then the teacher's kept filters and the least-squares fold of the dropped
channels (lab.prune.transfer). Wan 2.2 (lab.families.wan22) builds through the same function with its own
student class."""

from __future__ import annotations

from functools import partial

from lab.families.wan.arch import WAN
from lab.families.wan.student import TEACHER_KEYS, WanStudentAdapter, WanStudentVAE
from lab.models.students.base import plain as _plain
from lab.prune.students import register_student_builder
from lab.prune.transfer import transfer


def build_wan_like(vae_cls, adapter_cls, teacher, groups, widths, kept, ratios, criterion, analysis, fold, ridge,
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


build_wan_student = partial(build_wan_like, WanStudentVAE, WanStudentAdapter)
register_student_builder(WAN, build_wan_student)
