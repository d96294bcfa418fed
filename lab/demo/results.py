"""results.json of the main job: its schema (what tests and other tools may rely on) and its writer."""

from __future__ import annotations

from pathlib import Path

from lab.files import atomic_write_text
from lab.errors import LabError
from lab.jsonio import dumps

#: 2: random selection over several seeds (quality.psnr_vs_teacher_before_training.random is {seeds, psnr,
#: mean, min, max}), quality.independence_vs_baselines, eval roles pruned-random-seedK, clips.distill.
#: 3: one name per row: eval rows' "decoder" and bench rows' "label" are the same label (lab.demo.pipeline.row_label,
#: e.g. 'student (pruned+swapped, untrained)'), "model" is the decoder object's own name; retention comes with
#: psnr_drop_db (rows and quality); eval.metric_labels says each metric's unit and better direction; VMAF is
#: scored at the 1080-line viewing size (eval.vmaf_note, lab.eval.vmaf).
SCHEMA_VERSION = 3

#: top-level key -> keys it must have (None: any value)
SCHEMA = {
    "schema_version": None, "created": None, "wall_seconds": None, "settings": None,
    "teacher": ("name", "trained_weights", "decoder_params"),
    "clips": ("calibration", "distill", "heldout", "heldout_note"),
    "steps": ("analyze", "prune", "swap", "distill", "eval", "bench", "profile", "report"),
    "analysis": ("decoder", "groups"),
    "pruning": ("ratios", "criteria", "random_seeds", "decoder_params"),
    "swap": ("operators", "decoder_params"),
    "distill": ("status",),
    "eval": ("clip", "metrics", "metric_labels", "decoders"),
    "quality": ("retention", "psnr_drop_db", "final_label", "independence_beats_baselines",
                "independence_vs_baselines", "random_seeds_beaten", "psnr_vs_teacher_before_training"),
    "bench": ("device", "frames", "size", "repeats", "decoders"),
    "profile": ("teacher", "student"),
    "outputs": ("report", "results", "side_by_side", "student"),
}
EVAL_ROW = ("decoder", "role", "model", "decoder_params", "vs_clip")
#: quality.psnr_vs_teacher_before_training.random
RANDOM_STATS = ("seeds", "psnr", "mean", "min", "max")
BENCH_ROW = ("label", "decoder", "seconds", "fps", "speedup", "decoder_params")


def validate_results(r: dict) -> dict:
    """Raise LabError naming every missing key; return ``r``."""
    missing = [k for k in SCHEMA if k not in r]
    for k, sub in SCHEMA.items():
        if sub and k in r:
            missing += [f"{k}.{s}" for s in sub if s not in r[k]]
    for i, row in enumerate(r.get("eval", {}).get("decoders", [])):
        missing += [f"eval.decoders[{i}].{s}" for s in EVAL_ROW if s not in row]
    rand = r.get("quality", {}).get("psnr_vs_teacher_before_training", {}).get("random")
    if isinstance(rand, dict):
        missing += [f"quality.psnr_vs_teacher_before_training.random.{s}" for s in RANDOM_STATS if s not in rand]
    elif "quality" in r:
        missing.append("quality.psnr_vs_teacher_before_training.random")
    for i, row in enumerate(r.get("bench", {}).get("decoders", [])):
        missing += [f"bench.decoders[{i}].{s}" for s in BENCH_ROW if s not in row]
    if missing:
        raise LabError(f"results.json is missing {', '.join(missing)} (schema version {SCHEMA_VERSION})")
    return r


def write_results(path: Path, results: dict) -> Path:
    """Strict JSON (non-finite numbers as "inf"/"nan", like every --json output), written atomically."""
    return atomic_write_text(path, dumps(validate_results(results)) + "\n")
