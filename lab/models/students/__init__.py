"""Students: smaller decoders built from a teacher (pruned widths, swapped operators). What every family's
students share lives here (``base``: the adapter base; ``folded_norm``: the folded RMS norm); each VAE family
defines and registers its own student classes (lab/families)."""

from lab.models.students.base import StudentAdapter, plain
from lab.models.students.folded_norm import FoldedRMSNorm, folded_mean_square

__all__ = ["FoldedRMSNorm", "StudentAdapter", "folded_mean_square", "plain"]
