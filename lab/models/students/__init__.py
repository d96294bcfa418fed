"""Students: smaller decoders built from a teacher (pruned widths, swapped operators). Importing this
package registers their adapters, so ``load_decoder(folder)`` reloads a saved student."""

from lab.models.registry import register_adapter
from lab.models.students.ltx import LTXStudentAdapter, LTXStudentVAE
from lab.models.students.ltx2 import LTX2StudentAdapter, LTX2StudentVAE
from lab.models.students.wan import WanStudentAdapter, WanStudentVAE, teacher_widths
from lab.models.students.wan22 import Wan22StudentAdapter, Wan22StudentVAE

register_adapter(WanStudentAdapter.adapter_kind, WanStudentAdapter)
register_adapter(Wan22StudentAdapter.adapter_kind, Wan22StudentAdapter)
register_adapter(LTXStudentAdapter.adapter_kind, LTXStudentAdapter)
register_adapter(LTX2StudentAdapter.adapter_kind, LTX2StudentAdapter)

__all__ = ["LTX2StudentAdapter", "LTX2StudentVAE", "LTXStudentAdapter", "LTXStudentVAE", "Wan22StudentAdapter",
           "Wan22StudentVAE", "WanStudentAdapter", "WanStudentVAE", "teacher_widths"]
