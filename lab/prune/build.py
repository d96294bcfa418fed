"""Build a pruned student from a teacher: analyse (live hooks on calibration clips), select channels
per group with a named criterion, build the narrower model, copy and fold the teacher's weights in,
and optionally swap operators (lab.ops) on top."""

from __future__ import annotations

import logging
import time

import torch

from lab.analysis import ChannelAnalysis, analyze, calibration_latents
from lab.analysis.groups import ltx_groups, wan_groups
from lab.analysis.linalg import FOLD_RIDGE
from lab.errors import ConfigError
from lab.models.registry import load_decoder
from lab.models.students import ltx as ltx_student
from lab.models.students.wan import TEACHER_KEYS, WanStudentAdapter, WanStudentVAE
from lab.prune.criteria import INDEPENDENCE_FAMILY, NEEDS_SENSITIVITY, CriterionContext, get_criterion, select
from lab.prune.ltx import transfer_ltx
from lab.prune.plan import group_widths, resolve_keep
from lab.prune.transfer import transfer

log = logging.getLogger("lab")


def _check_teacher(teacher) -> str:
    kind = getattr(teacher, "adapter_kind", "")
    if kind in ("wan", "ltx"):
        return kind
    raise ConfigError(f"{teacher.name} is a {getattr(teacher, 'family', '?')} of kind '{kind or '?'}'; only teachers "
                      f"(Wan 2.1 and LTX-Video families) can be pruned. Pass the teacher it came from.")


def prune(teacher, keep, criterion: str = "independence", *, latents=None, clips=None, frames: int = 9,
          size=None, operators=None, name: str | None = None, seed: int = 0, fold: bool = True,
          ridge: float = FOLD_RIDGE, analysis: ChannelAnalysis | None = None, subscribers=(),
          fold_norms: bool = False, refine: int = 0, refine_swaps: int = 0, sensitivity_probes: int = 4):
    """Return (student, info). ``keep``: ratio in (0, 1] for every prunable stage, or {stage: ratio}.
    Calibration: ``latents`` (normalized, a tensor or a list), else ``clips`` (names/paths, encoded by
    the teacher; default the bundled clip), or a ready ``analysis`` of this teacher. ``ridge``: the
    fold's regularisation, relative to the kept channels' mean variance (lab.analysis.linalg.FOLD_RIDGE;
    0 = plain least squares). Wan teachers give a WanStudentAdapter, LTX-Video ones an LTXStudentAdapter.
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
    kind = _check_teacher(teacher)
    tvae = teacher.vae
    groups = wan_groups(tvae) if kind == "wan" else ltx_groups(tvae)
    n_up = len(tvae.decoder.up_blocks)
    ratios = resolve_keep(keep, kind, groups, n_up)
    widths = group_widths(groups, ratios)
    _, needs_stats, _ = get_criterion(criterion)
    info: dict = {"teacher": teacher.name, "criterion": criterion, "ratios": ratios, "fold": fold,
                  "ridge": float(ridge)}

    t0 = time.perf_counter()
    if analysis is None and widths and (needs_stats or fold or refine > 0):
        if latents is None:
            latents, names = calibration_latents(teacher, clips or ("bbb-128",), frames=frames, size=size)
        else:
            names = None
        analysis = analyze(teacher, latents, groups=groups, clip_names=names, subscribers=subscribers)
        info["calibration"] = {"clips": names or "latents", "steps": analysis.steps}
        if names and len(names) == 1 and min(ratios.values(), default=1.0) <= 0.25:
            # Measured on mini-wan at 12.5% of up2/up3: calibrated on the bundled cartoon alone, independence
            # loses to random selection on held-out clips (14.9 vs 18.7 dB); on three clips it wins (21.7 vs 18.3).
            log.warning("calibrating on one clip (%s) at keep ratios down to %.3g: which channels look redundant "
                        "depends on what the clips show; pass several varied clips (e.g. --clips bbb-128 "
                        "bigbuckbunny bikes after `python -m lab data fetch`).", names[0], min(ratios.values()))
    info["analysis_s"] = time.perf_counter() - t0

    if widths and (criterion in NEEDS_SENSITIVITY or refine > 0) and not analysis.sensitivity:
        latents = _calibration(teacher, latents, clips, frames, size)
        t1 = time.perf_counter()
        analysis.add_sensitivity(teacher, latents, probes=sensitivity_probes, seed=seed)
        info["sensitivity_s"] = time.perf_counter() - t1

    kept = _select(criterion, groups, widths, tvae, analysis, seed)

    def build(kept):
        return _build_student(teacher, kind, groups, widths, kept, ratios, criterion, analysis, fold, ridge,
                              fold_norms)

    if refine > 0 and widths:
        from lab.prune.refine import refine_selection
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

    svae, adapter, info["transfer"] = build(kept)
    if operators:
        from lab.ops.plan import resolve_plan
        from lab.ops.swap import apply_operators
        plan = {s: op for s, op in resolve_plan(operators, kind, n_up).items() if op != "keep"}
        if plan:
            apply_operators(svae, kind, plan, init_from_existing=True)
            svae.register_to_config(operators=plan)
            if kind == "wan":
                svae.clear_cache()
        info["operators"] = plan
    student = adapter(name or f"{teacher.name}-student", svae)
    student = student.to(device=teacher.device, dtype=teacher.dtype).eval()
    info.update({"widths": widths, "decoder_params": student.decoder_params(),
                 "teacher_decoder_params": teacher.decoder_params()})
    return student, info


def _calibration(teacher, latents, clips, frames, size) -> list:
    """The calibration latents as a list (encoding ``clips`` when no latents were given)."""
    if latents is None:
        latents, _ = calibration_latents(teacher, clips or ("bbb-128",), frames=frames, size=size)
    return [latents] if torch.is_tensor(latents) else list(latents)


def _select(criterion, groups, widths, tvae, analysis, seed) -> dict[str, list[int]]:
    return {g.name: select(criterion, CriterionContext(g, widths[g.name], tvae, analysis, seed))
            for g in groups if g.name in widths}


def _build_student(teacher, kind, groups, widths, kept, ratios, criterion, analysis, fold, ridge, fold_norms):
    """(student VAE, adapter class, transfer report) for a selection: the narrower model with the
    teacher's selected filters copied and the dropped channels folded into the next layers."""
    tvae = teacher.vae
    if kind == "wan":
        tc = {k: _plain(tvae.config[k]) for k in TEACHER_KEYS if k in tvae.config}
        # fold_norms: the norms of narrowed groups divide by the teacher's rms estimated from the kept
        # channels (lab.models.students.folded_norm) instead of a rescaled plain norm; full-width groups
        # keep the teacher's norm. Opt-in for Wan: it raises every criterion's PSNR (e.g. independence at
        # 50% of mini-wan up2/up3 36.7 -> 39.9 dB) but helps random selection more at 25% (see issue 4).
        folded = ([n for g in groups if g.name in kept and len(kept[g.name]) < g.width for n in g.norms]
                  if fold_norms else [])
        svae = WanStudentVAE(teacher=teacher.name, teacher_config=tc, widths=widths, kept=kept, ratios=ratios,
                             criterion=criterion, operators={}, patch_size=tc.get("patch_size"),
                             folded_norms=folded)
        transfer_report = transfer(tvae, svae, groups, kept, analysis, fold=fold, ridge=ridge)
        adapter = WanStudentAdapter
    else:
        tc = {k: _plain(tvae.config[k]) for k in ltx_student.TEACHER_KEYS if k in tvae.config}
        tc["latents_mean"] = _plain(tvae.latents_mean.float().cpu())
        tc["latents_std"] = _plain(tvae.latents_std.float().cpu())
        svae = ltx_student.LTXStudentVAE(teacher=teacher.name, teacher_config=tc, widths=widths, kept=kept,
                                         ratios=ratios, criterion=criterion, operators={},
                                         timestep_conditioning=bool(tc.get("timestep_conditioning")))
        transfer_report = transfer_ltx(tvae, svae, groups, kept, analysis, fold=fold, ridge=ridge)
        adapter = ltx_student.LTXStudentAdapter
    return svae, adapter, transfer_report


def _plain(v):
    """Config values as JSON-friendly Python (FrozenDict lists/tuples -> lists)."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, torch.Tensor):
        return v.tolist()
    return v
