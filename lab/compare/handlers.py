"""What each control of the compare demo does, in plain Python: inputs are the values of the UI's
widgets (also the parameters of the named API endpoints), outputs are paths, figures, table rows and
markdown. apps/compare.py binds these to Gradio components and turns LabError into gr.Error.

Sessions are shared through one SessionCache: a teacher + clip is encoded and analysed once, whoever
asks (browser or gradio_client). The cache loads only what its ModelAccess allows (registered names and
the app's models folders, lab.compare.access); ``configure`` sets that policy when the app starts.
"""

from __future__ import annotations

import atexit

import torch

from lab.compare.access import ModelAccess, block_downloads
from lab.compare.clips import LIMITS, clip_choices, validate_upload
from lab.compare.session import (Progress, SessionCache, StudentSpec, default_device, extra_decoders, merge_keep,
                                 no_progress)
from lab.errors import ConfigError
from lab.models.registry import list_entries

#: the metrics table: (header, row field, scale, decimals), in order. Short headers, and a column only
#: when some row has its value (VMAF and memory are opt-in, errors rare), so the table fits the page;
#: the JSON output has every field.
TABLE = [("decoder", "decoder", None, None), ("params (M)", "decoder_params", 1e-6, 3),
         ("s / decode", "seconds", 1, 3), ("fps", "fps", 1, 2), ("speed-up", "speedup", 1, 2),
         ("PSNR (dB)", "psnr", 1, 2), ("SSIM", "ssim", 1, 3), ("VMAF", "vmaf", 1, 1),
         ("PSNR vs teacher", "psnr_vs_teacher", 1, 2), ("SSIM vs teacher", "ssim_vs_teacher", 1, 3),
         ("VMAF vs teacher", "vmaf_vs_teacher", 1, 1), ("peak MB", "peak_mem_bytes", 2**-20, 1),
         ("decode MB", "decode_mem_bytes", 2**-20, 1), ("error", "error", None, None)]
#: the columns the table heads before its first decode: those of a plain teacher | student comparison
START_COLUMNS = [header for header, field, *_ in TABLE
                 if field not in ("vmaf", "vmaf_vs_teacher", "peak_mem_bytes", "decode_mem_bytes", "error")]
DEFAULT_DECODERS = ["teacher", "student"]

CACHE = SessionCache(access=ModelAccess.start())
atexit.register(CACHE.close)  # its temporary folder goes when the process ends, however the app stopped


def configure(models_dirs=None, allow_downloads: bool = False) -> ModelAccess:
    """The app's policy: what its fields may load, and whether the hub may be reached. Sessions made
    under an earlier policy are dropped."""
    CACHE.access = ModelAccess.start(models_dirs, allow_downloads)
    CACHE.clear()
    if not allow_downloads:
        block_downloads()
    return CACHE.access


def teacher_choices() -> list[str]:
    names = [e.name for e in list_entries("teacher")]
    return sorted(names, key=lambda n: (n not in ("mini-wan", "mini-ltx"), n))


def device_markdown() -> str:
    dev = default_device()
    if dev.type == "cuda":
        return f"Running on **GPU** ({torch.cuda.get_device_name(dev)})."
    return f"Running on **CPU** ({torch.get_num_threads()} thread(s)); no CUDA GPU was found. Keep clips small."


def session(teacher, weights, clip, upload, frames, short_side):
    """The cached session for these settings (an upload, when given, replaces the clip choice)."""
    if not teacher:
        raise ConfigError("choose a teacher (e.g. mini-wan), or type a registered name or a saved folder.")
    if upload:
        return CACHE.get(teacher, weights, str(upload), True, frames, short_side)
    clip = clip or "bbb-128"
    if clip not in clip_choices():  # a clip name, never a path on the server
        raise ConfigError(f"unknown clip '{clip}'; pick one of {', '.join(clip_choices())}, or upload a video.")
    return CACHE.get(teacher, weights, clip, False, frames, short_side)


def check_upload(upload) -> str:
    """Markdown about an uploaded file: what will be used, or why it is refused (raises UploadError)."""
    if not upload:
        return "No upload: the selected clip is used."
    info = validate_upload(upload)
    return (f"Upload accepted: {info['width']}x{info['height']}, {info['frames']} frames, {info['duration_s']:.1f} s "
            f"at {info['fps']:.1f} fps. It will be cut to the working frames and size below.")


def student_spec(s, keep, per_stage, criterion="independence", operators=None) -> StudentSpec | None:
    """The student the controls describe: the slider's ratio for every prunable stage, overridden per
    stage by the text; None when the analysis found nothing to prune."""
    if not s.can_prune:
        return None
    return StudentSpec.make(merge_keep(keep, per_stage, s.prunable_stages()), criterion or "independence", operators)


def _stage(s, stage) -> str:
    """``stage`` when the analysis has it, else the last prunable stage (or the last stage)."""
    stages = s.stages()
    return stage if stage in stages else (s.prunable_stages() or stages)[-1]


def load(teacher, weights, clip, upload, frames, short_side, keep, per_stage, stage=None, criterion="independence",
         progress: Progress = no_progress):
    """Load teacher + clip and run (or reuse) the channel analysis. Returns (info markdown, stage names,
    selected stage, heatmap figure, explained-variance figure, registered decoders of this teacher's
    latents, caption of the figures)."""
    s = session(teacher, weights, clip, upload, frames, short_side)
    s.analysis(progress)
    pick = _stage(s, stage)
    heat, curve, caption = s.figures(pick, student_spec(s, keep, per_stage, criterion))
    return info_markdown(s), s.stages(), pick, heat, curve, extra_decoders(s.teacher.geometry), caption


def figures(teacher, weights, clip, upload, frames, short_side, keep, per_stage, stage, criterion="independence",
            progress: Progress = no_progress):
    """(heatmap, explained-variance curve, caption) of ``stage`` for the student of these ratios and
    criterion, its kept channels marked, from the cached analysis."""
    *_, heat, curve, _, caption = load(teacher, weights, clip, upload, frames, short_side, keep, per_stage, stage,
                                       criterion, progress)
    return heat, curve, caption


def decode(teacher, weights, clip, upload, frames, short_side, keep, per_stage, criterion, operators, decoders,
           extras, saved, vmaf, memory=False, stage=None, runtime="eager", progress: Progress = no_progress):
    """Decode with the chosen decoders, each under ``runtime`` (lab.compare.session.RUNTIMES). Returns
    (side-by-side mp4, difference mp4, the table, full rows as JSON-friendly dicts, info markdown, and the
    heatmap, explained-variance curve and caption of ``stage`` redrawn for the student this decode used)."""
    s = session(teacher, weights, clip, upload, frames, short_side)
    s.analysis(progress)
    spec = student_spec(s, keep, per_stage, criterion, operators)
    specs = []
    for d in decoders or []:
        if d == "student":
            if spec is None:  # the session raises its own error for a teacher it cannot prune
                spec = StudentSpec.make(float(keep), criterion or "independence", operators)
            specs.append(spec)
        else:
            specs.append(d)
    specs += list(extras or []) + [p.strip() for p in (saved or "").split(",") if p.strip()]
    result = s.compare(specs, runtime=runtime or "eager", vmaf=bool(vmaf), memory=bool(memory), progress=progress)
    heat, curve, caption = s.figures(_stage(s, stage), spec if s.can_prune else None)
    notes = list(dict.fromkeys(r["note"] for r in result.rows if r.get("note")))
    return (str(result.side_by_side), str(result.difference), table(result.rows), result.rows,
            info_markdown(s, result.labels, notes), heat, curve, caption)


def info_markdown(s, labels=None, notes=()) -> str:
    d = s.describe()
    lines = [f"**{d['teacher']}** ({d['teacher_params'] / 1e6:.2f} M decoder params) on **{d['device']}**; "
             f"clip **{d['clip']}**: {d['frames']} frames at {d['size'][0]}x{d['size'][1]} "
             f"(source {d['source_frames']} frames, {d['source_size'][0]}x{d['source_size'][1]}"
             + (", cropped" if d["cropped"] else "") + f"), latents {tuple(d['latents_shape'])}."]
    if d["analysis_s"] is not None:
        lines.append(f"Channel analysis cached ({d['analysis_s']:.2f} s, run {s.analysis_runs}x); "
                     f"students rebuilt from it: {s.student_builds}.")
    if d["can_prune"] is False:
        lines.append(f"The analysis of {d['teacher']} found no prunable channels: no pruned student for it.")
    if labels:
        lines.append("Columns, left to right: " + " | ".join(labels) + ".")
    lines += list(notes)
    lines.append(LIMITS.describe() + ".")
    return "\n\n".join(lines)


def table(rows: list[dict]) -> dict:
    """The per-decoder table as the page shows it: {"headers": [...], "data": [[...], ...]}, only the
    columns some row has a value for (see TABLE)."""
    columns = [c for c in TABLE if any(r.get(c[1]) is not None for r in rows)]
    return {"headers": [header for header, *_ in columns],
            "data": [[_cell(r.get(field), scale, decimals) for _, field, scale, decimals in columns] for r in rows]}


def _cell(value, scale, decimals):
    if value is None:
        return ""
    if scale is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return round(value * scale, decimals)
