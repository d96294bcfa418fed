"""The small experiments the notebooks run and assert on, as plain functions (so they are tested
here and reusable outside a notebook): pruning criteria compared at one width, the keep-ratio
explorer widget, the causality check of a streamed decoder, and decoders timed side by side."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from lab.analysis import analyze, linalg
from lab.data.samples import resolve_clip
from lab.data.video import load_clip
from lab.distill import load_config
from lab.errors import LabError, WeightsNotFoundError
from lab.eval.metrics import PSNR, psnr
from lab.models import load_decoder
from lab.notebook.figures import _PALETTE
from lab.notebook.live import _figure_widget
from lab.paths import REPO_ROOT
from lab.prune import prune


def compare_criteria(teacher, analysis, keep, latents, reference=None,
                     criteria=("independence", "magnitude", "random"), seed: int = 0,
                     random_seeds: int = 3) -> list[dict]:
    """Prune ``teacher`` at ``keep`` (a ratio or {stage: ratio}) with each criterion (same widths, same
    calibration ``analysis``) and score each student's decode of ``latents`` (one tensor, or a list of
    held-out clips) against ``reference`` (default: the teacher's own decode, i.e. how much of the teacher
    the student keeps before any training). PSNR pools the squared error over all clips; ``per_clip``
    has each clip's. ``random`` is a distribution, so it is scored by its mean over ``random_seeds``
    seeds (``psnr_min`` / ``psnr_best``: its unluckiest and luckiest seed): one seed alone can land
    anywhere in it."""

    clips = [latents] if torch.is_tensor(latents) else list(latents)
    refs = [teacher.decode(z) for z in clips] if reference is None else (
        [reference] if torch.is_tensor(reference) else list(reference))
    rows = []
    for crit in criteria:
        seeds = range(seed, seed + (random_seeds if crit == "random" else 1))
        scores, per_clip = [], []
        for s in seeds:
            student, info = prune(teacher, keep, crit, analysis=analysis, seed=s)
            total, each = PSNR(), []
            for z, ref in zip(clips, refs):
                out = student.decode(z)
                total.update(out, ref)
                each.append(psnr(out, ref))
            scores.append(total.compute())
            per_clip.append(each)
        rows.append({"criterion": crit, "keep": keep if isinstance(keep, dict) else float(keep),
                     "psnr": sum(scores) / len(scores), "psnr_min": min(scores), "psnr_best": max(scores),
                     "per_clip": [sum(c) / len(c) for c in zip(*per_clip)], "seeds": len(scores),
                     "decoder_params": info["decoder_params"],
                     "teacher_decoder_params": info["teacher_decoder_params"]})
    return rows


class KeepRatioExplorer:
    """A slider for the keep ratio and a bar chart of student PSNR (vs the teacher) per criterion,
    recomputed when the slider moves. ``update(keep)`` does what moving the slider does, so the
    notebook can also demonstrate it without a live frontend. Results are cached per ratio."""

    def __init__(self, teacher, analysis, latents, reference=None, criteria=("independence", "magnitude", "random"),
                 ratios=(0.125, 0.25, 0.375, 0.5, 0.75), initial: float = 0.25):
        import ipywidgets as widgets  # deferred: ipywidgets and plotly, from the notebooks extra
        import plotly.graph_objects as go


        if initial not in ratios:
            raise LabError(f"initial keep ratio {initial} is not one of the slider's ratios {list(ratios)}")
        self.teacher, self.analysis, self.latents = teacher, analysis, latents
        self.reference = teacher.decode(latents) if reference is None else reference
        self.criteria = tuple(criteria)
        self.results: dict[float, list[dict]] = {}
        self.slider = widgets.SelectionSlider(options=[(f"{r:g}", r) for r in ratios], value=initial,
                                              description="keep ratio", continuous_update=False)
        self.label = widgets.HTML()
        self.figure = _figure_widget(go.Figure(
            go.Bar(x=list(self.criteria), y=[0.0] * len(self.criteria),
                   marker_color=[_PALETTE[i % len(_PALETTE)] for i in range(len(self.criteria))]),
            layout=dict(yaxis_title="PSNR vs teacher (dB)", height=350, title="moving the slider prunes again")))
        self.slider.observe(lambda change: self.update(change["new"]), names="value")
        self.widget = widgets.VBox([self.slider, self.label, self.figure])
        self.update(initial)

    def update(self, keep: float) -> list[dict]:
        if keep not in self.results:
            self.results[keep] = compare_criteria(self.teacher, self.analysis, keep, self.latents, self.reference,
                                                  self.criteria)
        rows = self.results[keep]
        with self.figure.batch_update():
            self.figure.data[0].y = [r["psnr"] for r in rows]
            self.figure.layout.title = f"keep {keep:g}: student PSNR vs teacher, by criterion"
        params = rows[0]["decoder_params"]
        self.label.value = (f"keep {keep:g}: {params:,} decoder parameters "
                            f"({params / rows[0]['teacher_decoder_params']:.0%} of the teacher)")
        return rows


@torch.no_grad()
def causality_check(decoder, z: torch.Tensor, t: int | None = None, bump: float = 1.0) -> dict:
    """Two facts a causal (streaming) decoder must satisfy, measured on ``z``:
    1. decoding one latent frame at a time (``decode_stream``) gives the same video as ``decode``;
    2. changing latent frame ``t`` (default: the last) leaves every output frame before
       ``1 + t_c * (t - 1)`` (its first frame) unchanged, and changes the frames from there on.
    Returns the largest differences, the frame split, and ``causal`` (both facts hold)."""
    if not decoder.causal:
        raise LabError(f"{decoder.name} is not causal (it decodes whole clips); the check applies to Wan-style "
                       f"causal decoders")
    T = z.shape[2]
    if T < 2:
        raise LabError("the causality check needs at least 2 latent frames")
    t = T - 1 if t is None else t
    if not 1 <= t < T:
        raise LabError(f"t={t} must name a latent frame after the first (1..{T - 1})")
    whole = decoder.decode(z)
    streamed = torch.cat(list(decoder.decode_stream(z)), dim=2)
    z2 = z.clone()
    z2[:, :, t] += bump
    changed = decoder.decode(z2)
    first = decoder.geometry.frames_for(t)  # output frames that only depend on latents < t
    stream_diff = float((streamed - whole).abs().max())
    before = float((changed[:, :, :first] - whole[:, :, :first]).abs().max())
    after = float((changed[:, :, first:] - whole[:, :, first:]).abs().max())
    return {"stream_vs_whole_max_abs": stream_diff, "changed_latent": t, "frames_before": first,
            "before_max_abs": before, "after_max_abs": after,
            "causal": stream_diff <= 1e-4 and before == 0.0 and after > 0.0}


@torch.no_grad()
def time_side_by_side(decoders: dict, z: torch.Tensor, repeats: int = 5, warmup: int = 1) -> list[dict]:
    """Median decode time of each decoder on the same latents, measured in this process with the
    repeats interleaved (A, B, A, B, ...) so load changes on a shared machine hit all alike (the method
    of ``lab.eval.bench``, for in-memory decoders that have no registered name or folder yet).
    ``speedup`` is the first decoder's median over each decoder's median."""
    if not decoders:
        raise LabError("time_side_by_side needs at least one decoder")
    if repeats < 1:
        raise LabError(f"repeats must be >= 1, got {repeats}")
    sync = torch.cuda.synchronize if z.device.type == "cuda" else (lambda: None)
    items = list(decoders.items())
    for _, dec in items:
        for _ in range(warmup):
            dec.decode(z)
    times = {name: [] for name, _ in items}
    for _ in range(repeats):
        for name, dec in items:
            sync()
            t0 = time.perf_counter()
            dec.decode(z)
            sync()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times[items[0][0]])
    return [{"decoder": name, "seconds": statistics.median(times[name]),
             "speedup": base / statistics.median(times[name]), "decoder_params": dec.decoder_params()}
            for name, dec in items]


def selection_vs_random(analysis, group: str, keep: float, trials: int = 20, seed: int = 0) -> dict:
    """Explained variance of one channel group when ``keep`` of its channels are chosen greedily by
    independence, against random subsets of the same size (best and mean of ``trials``). This is the
    fact pruning relies on: the chosen channels predict the dropped ones far better than chance."""

    rep = analysis.group(group)
    gram = analysis.selection_gram(rep)
    k = max(1, round(keep * rep.width))
    total = linalg.subset_residual(gram, [])
    order, residuals = linalg.greedy_select(gram, k)
    gen = torch.Generator().manual_seed(seed)
    rand = [1.0 - linalg.subset_residual(gram, torch.randperm(rep.width, generator=gen)[:k].tolist()) / total
            for _ in range(trials)]
    return {"group": group, "width": rep.width, "kept": k, "independence": 1.0 - residuals[-1] / total,
            "random_mean": statistics.fmean(rand), "random_best": max(rand), "trials": trials}


def small_distill_config(source, *, steps_per_phase: int, frames: int, size: int, eval_every: int,
                         clips=None, calibration_frames: int | None = None, calibration_size: int | None = None):
    """A distillation config (a TOML/YAML path, relative paths taken from the repository root, a dict or
    a DistillConfig) shrunk to notebook size: every phase capped at ``steps_per_phase`` steps, training
    and validation windows of ``frames`` x ``size`` x ``size``, no periodic checkpoints or samples (the
    run still saves its best and last students). The recipe itself (student, losses, phases) is kept."""

    if isinstance(source, (str, Path)) and not Path(source).is_absolute() and not Path(source).exists():
        source = REPO_ROOT / source
    cfg = load_config(source)
    cfg.data.crop = cfg.data.val_size = int(size)
    cfg.data.frames = cfg.data.val_frames = int(frames)
    cfg.data.short_sides = [max(int(size), min(cfg.data.short_sides or [size]))]
    if clips is not None:
        cfg.data.clips = list(clips)
    if calibration_frames is not None:
        cfg.student.calibration_frames = int(calibration_frames)
    if calibration_size is not None:
        cfg.student.calibration_size = int(calibration_size)
    for ph in cfg.phases:
        ph.max_steps = int(steps_per_phase)
        ph.frames = None if ph.frames is not None and ph.frames > frames else ph.frames
        ph.crop = None if ph.crop is not None and ph.crop > size else ph.crop
    cfg.eval_every = int(eval_every)
    cfg.checkpoint_every, cfg.sample_every, cfg.checkpoint_minutes = 0, 0, 0.0
    return cfg.validate()


def real_decoder_comparison(keep: float, *, weights=None, calib_clips=("bbb-128", "bigbuckbunny", "bikes"),
                            heldout_clip: str = "carphone", frames: int = 2, size=(128, 128), random_seeds: int = 3,
                            device="cpu") -> tuple[list[dict] | None, str]:
    """``compare_criteria`` on a real decoder the lab did not train: the released TAEF2 (lab.families.taef2),
    calibrated on ``calib_clips`` and scored on ``heldout_clip`` (native size) against its own decode.
    Returns (rows, what they show), or (None, why) when its weights are not here (``weights``: a folder
    with taef2_decoder.pth and taef2_encoder.pth; default ../shared/assets/weights/taef2)."""

    try:
        real = load_decoder("taef2", weights=weights, device=device)
    except WeightsNotFoundError as exc:
        return None, f"skipped: {exc}"

    def latents(clip, size):
        v = load_clip(resolve_clip(clip), frames=frames, size=size, frame_multiple=1, spatial_multiple=8)
        return real.encode(v.to(device))

    analysis = analyze(real, [latents(c, size) for c in calib_clips], clip_names=list(calib_clips))
    rows = compare_criteria(real, analysis, keep, latents(heldout_clip, None), random_seeds=random_seeds)
    score = {r["criterion"]: r["psnr"] for r in rows}
    best = max(score, key=score.get)
    lead = score["independence"] - max(v for k, v in score.items() if k != "independence")
    return rows, (f"TAEF2 at keep {keep:g}: {best} is best; independence "
                  f"{'leads the next criterion by' if lead > 0 else 'trails the best by'} {abs(lead):.1f} dB "
                  f"(PSNR against the teacher's decode of {heldout_clip}, before any training)")
