"""Build a pruned student from a teacher: analyse (live hooks on calibration clips), select channels
per group with a named criterion, build the narrower model, copy and fold the teacher's weights in,
and optionally swap operators (lab.ops) on top."""

from __future__ import annotations

import logging
import time

import torch

from lab.analysis import ChannelAnalysis, analyze, calibration_latents
from lab.analysis.linalg import FOLD_RIDGE
from lab.arch import Architecture, architectures
from lab.data.heldout import reads_heldout
from lab.errors import ConfigError
from lab.models.registry import load_decoder
from lab.ops.plan import resolve_plan
from lab.ops.swap import apply_operators
from lab.progress import track
from lab.prune.criteria import INDEPENDENCE_FAMILY, NEEDS_SENSITIVITY, CriterionContext, get_criterion, select
from lab.prune.plan import group_widths, resolve_keep
from lab.prune.refine import refine_selection
from lab.prune.students import student_builder

log = logging.getLogger("lab")


def _check_teacher(teacher) -> Architecture:
    arch = getattr(teacher, "arch", None)
    if arch is not None and getattr(teacher, "family", None) == "teacher":
        return arch
    raise ConfigError(f"{teacher.name} is a {getattr(teacher, 'family', '?')} of kind "
                      f"'{getattr(teacher, 'adapter_kind', '?')}'; only teachers (of the "
                      f"{', '.join(a.title for a in architectures().values())} families) can be pruned. Pass the "
                      f"teacher it came from.")


def prune(teacher, keep, criterion: str = "independence", *, latents=None, clips=None, frames: int = 9,
          size=None, operators=None, name: str | None = None, seed: int = 0, fold: bool = True,
          ridge: float = FOLD_RIDGE, analysis: ChannelAnalysis | None = None, subscribers=(),
          fold_norms: bool = False, refine: int = 0, refine_swaps: int = 0, sensitivity_probes: int = 4):
    """Return (student, info). ``keep``: ratio in (0, 1] for every prunable stage, {stage: ratio}, or
    'flash-vaed' (the teacher family's Flash-VAED widths).
    Calibration: ``latents`` (normalized, a tensor or a list), else ``clips`` (names/paths, encoded by
    the teacher; default every clip at hand that is not held out, at 128x128 unless ``size``:
    lab.analysis.calibration.default_calibration_clips; info['calibration'] names them), or a ready
    ``analysis`` of this teacher. ``ridge``: the fold's regularisation, relative to the kept channels'
    mean variance (lab.analysis.linalg.FOLD_RIDGE; 0 = plain least squares). The student is the teacher family's
    (its registered builder, lab.prune.students).
    ``refine``: passes of output-checked local search over the selection (lab.prune.refine; 0 = off),
    each trying the other independence criteria's choices and ``refine_swaps`` proxy-ranked single swaps
    per narrowed group, scored by the student's error against the teacher on the calibration latents.
    The refinement scores pruned students before any operator swap, and needs the calibration latents:
    with a ready ``analysis``, pass the ``latents`` it was recorded on too.
    ``sensitivity_probes``: random output probes per calibration clip for the output-sensitivity
    metrics (lab.analysis.sensitivity), computed when the criterion or ``refine`` uses them."""
    if refine < 0 or refine_swaps < 0 or sensitivity_probes < 1:
        raise ConfigError(f"refine passes and swaps must be >= 0 and sensitivity probes >= 1 (got refine={refine}, "
                          f"refine_swaps={refine_swaps}, sensitivity_probes={sensitivity_probes}).")
    teacher = load_decoder(teacher) if isinstance(teacher, str) else teacher
    arch, groups, n_up, ratios, widths = _planned_widths(teacher, keep)
    tvae = teacher.vae
    _, needs_stats, _ = get_criterion(criterion)
    # The operator plan is checked before the minutes of analysis, so a bad plan fails at once.
    plan = {s: op for s, op in resolve_plan(operators, arch, n_up).items() if op != "keep"} if operators else {}
    info: dict = {"teacher": teacher.name, "criterion": criterion, "ratios": ratios, "fold": fold,
                  "ridge": float(ridge)}

    t0 = time.perf_counter()
    if analysis is None and widths and (needs_stats or fold or refine > 0):
        if latents is None:
            _warn_heldout(clips, frames)
            latents, names = calibration_latents(teacher, clips or None, frames=frames, size=size)
        else:
            names = None
        analysis = analyze(teacher, latents, groups=groups, clip_names=names, subscribers=subscribers)
        info["calibration"] = {"clips": names or "latents", "default": bool(names) and not clips,
                               "steps": analysis.steps}
        if names and len(names) == 1 and min(ratios.values(), default=1.0) <= 0.25:
            _warn_one_clip(names[0], min(ratios.values()), defaulted=not clips)
    info["analysis_s"] = time.perf_counter() - t0

    if widths and (criterion in NEEDS_SENSITIVITY or refine > 0) and not analysis.sensitivity:
        latents = _calibration(teacher, latents, clips, frames, size)
        t1 = time.perf_counter()
        analysis.add_sensitivity(teacher, latents, probes=sensitivity_probes, seed=seed)
        info["sensitivity_s"] = time.perf_counter() - t1

    kept = _select(criterion, groups, widths, tvae, analysis, seed)

    def build(kept):
        return student_builder(arch)(teacher, groups, widths, kept, ratios, criterion, analysis, fold, ridge,
                                     fold_norms)

    if refine > 0 and widths:
        latents = _calibration(teacher, latents, clips, frames, size)
        refs = [teacher.decode(z) for z in latents]

        def score(sel):
            svae, adapter, _ = build(sel)
            student = adapter("refine", svae).to(device=teacher.device, dtype=teacher.dtype).eval()
            return sum(float(((student.decode(z) - r) ** 2).mean()) for z, r in zip(latents, refs)) / len(refs)

        # The other independence criteria's choices are candidates too: at small widths their proxies
        # disagree, and the student decides between them.
        alternatives: dict[str, list[list[int]]] = {}
        for other in INDEPENDENCE_FAMILY:
            if other != criterion:
                for gname, sel in _select(other, groups, widths, tvae, analysis, seed).items():
                    alternatives.setdefault(gname, []).append(sel)
        kept, info["refine"] = refine_selection(kept, groups, analysis, score, passes=refine, swaps=refine_swaps,
                                                alternatives=alternatives)

    info["kept"] = kept  # group -> the teacher channels the student keeps (the compare app outlines them)
    svae, adapter, info["transfer"] = build(kept)
    if operators:
        if plan:
            apply_operators(svae, arch, plan, init_from_existing=True)
            svae.register_to_config(operators=plan)
            arch.reset(svae)
        info["operators"] = plan
    student = adapter(name or f"{teacher.name}-student", svae)
    student = student.to(device=teacher.device, dtype=teacher.dtype).eval()
    info.update({"widths": widths, "decoder_params": student.decoder_params(),
                 "teacher_decoder_params": teacher.decoder_params()})
    return student, info


def _calibration(teacher, latents, clips, frames, size) -> list:
    """The calibration latents as a list (encoding ``clips`` when no latents were given)."""
    if latents is None:
        latents, _ = calibration_latents(teacher, clips or None, frames=frames, size=size)
    return [latents] if torch.is_tensor(latents) else list(latents)


def _warn_one_clip(name: str, ratio: float, defaulted: bool) -> None:
    # Measured on mini-wan at 12.5% of up2/up3: calibrated on the bundled cartoon alone, independence
    # loses to random selection on held-out clips (14.9 vs 18.7 dB); on three clips it wins (21.7 vs 18.3).
    fix = ("run `python -m lab data fetch`: the fetched sample clips are then calibrated on by default" if defaulted
           else "pass several varied clips (prune's --clips, or student.calibration_clips in a distill config; "
                "e.g. bbb-128, bigbuckbunny, bikes after `python -m lab data fetch`)")
    log.warning("calibrating on one clip (%s) at keep ratios down to %.3g: which channels look redundant depends on "
                "what the clips show; %s.", name, ratio, fix)


def _warn_heldout(clips, frames: int) -> None:
    """Clips named by the caller are used as given, but a held-out one makes its held-out scores optimistic."""
    touched = [str(c) for c in clips or () if reads_heldout(str(c), frames)]
    if touched:
        log.warning("calibrating on held-out frames of %s (lab.data.heldout): scores on them are no longer "
                    "held out; leave prune's --clips out for the default clips, which never include them (in a "
                    "distill config: name other student.calibration_clips).", ", ".join(touched))


def select_channels(teacher, keep, criterion: str = "independence", *, analysis: ChannelAnalysis,
                    seed: int = 0) -> dict[str, list[int]]:
    """Group -> the teacher channels ``prune(teacher, keep, criterion, analysis=analysis, seed=seed)`` keeps (no
    ``refine``), without building the student: what a figure of the selection needs. A criterion that needs
    output sensitivities needs them in ``analysis`` (``ChannelAnalysis.add_sensitivity``)."""
    _, groups, _, _, widths = _planned_widths(teacher, keep)
    if widths and criterion in NEEDS_SENSITIVITY and not analysis.sensitivity:
        raise ConfigError(f"criterion {criterion!r} needs output sensitivities in the analysis; call "
                          f"analysis.add_sensitivity(teacher, latents) first, or prune(), which adds them.")
    return _select(criterion, groups, widths, teacher.vae, analysis, seed)


def _planned_widths(teacher, keep):
    """What ``keep`` asks of ``teacher``: (its architecture, its prunable groups, its up-block count, the keep
    ratio per group, the width per narrowed group)."""
    arch = _check_teacher(teacher)
    groups = arch.prune_groups(teacher.vae)
    n_up = arch.num_up_blocks(teacher.vae)
    ratios = resolve_keep(keep, arch, groups, n_up)
    return arch, groups, n_up, ratios, group_widths(groups, ratios)


def _select(criterion, groups, widths, tvae, analysis, seed) -> dict[str, list[int]]:
    todo = [g for g in groups if g.name in widths]
    return {g.name: select(criterion, CriterionContext(g, widths[g.name], tvae, analysis, seed))
            for g in track(todo, f"prune: {criterion} selection", unit="group")}
