"""How a pruned TAEF2 student is built from its teacher (lab.prune asks the family's registered builder): the same
model class at the chosen widths, without the encoder, then the teacher's kept filters and the least-squares fold
of the dropped channels (lab.prune.transfer)."""

from __future__ import annotations

from lab.families.taef2.adapters import TAEF2StudentAdapter
from lab.families.taef2.arch import TAEF2
from lab.families.taef2.model import TAEF2Model
from lab.prune.students import register_student_builder
from lab.prune.transfer import transfer


def build_taef2_student(teacher, groups, widths, kept, ratios, criterion, analysis, fold, ridge, fold_norms):
    # The same model class at the chosen widths, without the encoder; no norms over pruned channels.
    c = teacher.vae.config
    svae = TAEF2Model(latent_channels=c.latent_channels, width=c.width, pool_width=c.pool_width, blocks=list(c.blocks),
                      pooled_stages=list(c.pooled_stages), with_encoder=False, widths=widths, kept=kept,
                      teacher=teacher.name, criterion=criterion, ratios=ratios, operators={})
    return svae, TAEF2StudentAdapter, transfer(teacher.vae, svae, groups, kept, analysis, fold=fold, ridge=ridge)


register_student_builder(TAEF2, build_taef2_student)
