"""Students: smaller decoders built from a teacher (pruned widths, swapped operators). Importing this
package registers their adapters, so ``load_decoder(folder)`` reloads a saved student."""

from lab.models.registry import register_adapter
from lab.models.students.wan import WanStudentAdapter, WanStudentVAE, teacher_widths

register_adapter(WanStudentAdapter.adapter_kind, WanStudentAdapter)

__all__ = ["WanStudentAdapter", "WanStudentVAE", "teacher_widths"]
