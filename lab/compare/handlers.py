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

#: columns of the metrics table, in order (the JSON output has every field)
TABLE_COLUMNS = ["decoder", "kind", "decoder_params", "seconds", "fps", "speedup", "peak_mem_mb", "decode_mem_mb",
                 "psnr", "ssim", "vmaf", "psnr_vs_teacher", "ssim_vs_teacher", "vmaf_vs_teacher", "error"]
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


def load(teacher, weights, clip, upload, frames, short_side, keep, per_stage, stage=None,
         progress: Progress = no_progress):
    """Load teacher + clip and run (or reuse) the channel analysis. Returns (info markdown, stage names,
    selected stage, heatmap figure, explained-variance figure, registered decoders of this teacher's
    latents)."""
    s = session(teacher, weights, clip, upload, frames, short_side)
    s.analysis(progress)
    stages = s.stages()
    keep_value = merge_keep(keep, per_stage, s.prunable_stages()) if s.can_prune else float(keep)
    pick = stage if stage in stages else (s.prunable_stages() or stages)[-1]
    return (info_markdown(s), stages, pick, s.heatmap(pick, keep_value), s.explained_variance(pick, keep_value),
            extra_decoders(s.teacher.geometry))


def figures(teacher, weights, clip, upload, frames, short_side, keep, per_stage, stage,
            progress: Progress = no_progress):
    """(heatmap, explained-variance curve) of ``stage`` at the keep ratio(s), from the cached analysis."""
    _, _, _, heat, curve, _ = load(teacher, weights, clip, upload, frames, short_side, keep, per_stage, stage, progress)
    return heat, curve


def decode(teacher, weights, clip, upload, frames, short_side, keep, per_stage, criterion, operators, decoders,
           extras, saved, vmaf, memory=False, progress: Progress = no_progress):
    """Decode with the chosen decoders. Returns (side-by-side mp4, difference mp4, table rows, full rows as
    JSON-friendly dicts, info markdown)."""
    s = session(teacher, weights, clip, upload, frames, short_side)
    specs = []
    for d in decoders or []:
        if d == "student":
            keep_value = merge_keep(keep, per_stage, s.prunable_stages()) if s.can_prune else float(keep)
            specs.append(StudentSpec.make(keep_value, criterion or "independence", operators))
        else:
            specs.append(d)
    specs += list(extras or []) + [p.strip() for p in (saved or "").split(",") if p.strip()]
    result = s.compare(specs, vmaf=bool(vmaf), memory=bool(memory), progress=progress)
    rows = [_table_row(r) for r in result.rows]
    return str(result.side_by_side), str(result.difference), rows, result.rows, info_markdown(s, result.labels)


def info_markdown(s, labels=None) -> str:
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
    lines.append(LIMITS.describe() + ".")
    return "\n\n".join(lines)


def _table_row(r: dict) -> list:
    out = dict(r)
    for k in ("peak_mem_bytes", "decode_mem_bytes"):
        if out.get(k) is not None:
            out[k.replace("_bytes", "_mb")] = out[k] / 2**20
    return [_round(out.get(c)) for c in TABLE_COLUMNS]


def _round(v):
    if isinstance(v, float):
        return round(v, 4)
    return "" if v is None else v
