"""Logic of the compare demo (apps/compare.py is only its wiring): a session holding a teacher, a clip
and the cached channel analysis; students rebuilt from it at any keep ratio; decodes scored against
the real clip and the teacher, timed, and rendered side by side; plotly figures of the analysis."""

from lab.compare.access import AccessError, ModelAccess
from lab.compare.clips import LIMITS, ClipLimits, UploadError, clip_choices, load_working_clip, validate_upload
from lab.compare.session import (CompareResult, CompareSession, SessionCache, StudentSpec, default_device,
                                 extra_decoders, merge_keep)

__all__ = ["LIMITS", "AccessError", "ClipLimits", "CompareResult", "CompareSession", "ModelAccess", "SessionCache",
           "StudentSpec", "UploadError", "clip_choices", "default_device", "extra_decoders", "load_working_clip",
           "merge_keep", "validate_upload"]
