"""Students: smaller decoders built from a teacher (pruned widths, swapped operators). Importing this
package registers their adapters, so ``load_decoder(folder)`` reloads a saved student."""

from lab.models.registry import register_adapter
from lab.models.students.ltx import LTXStudentAdapter, LTXStudentVAE
from lab.models.students.wan import WanStudentAdapter, WanStudentVAE, teacher_widths

register_adapter(WanStudentAdapter.adapter_kind, WanStudentAdapter)
register_adapter(LTXStudentAdapter.adapter_kind, LTXStudentAdapter)

__all__ = ["LTXStudentAdapter", "LTXStudentVAE", "WanStudentAdapter", "WanStudentVAE", "teacher_widths"]
