"""The decoder comparison table: several decoders of one latent space, side by side on the teacher's
latents of the held-out real clips (the clips no mini teacher and no student trained on).

For each held-out clip (``lab.data.heldout.HELDOUT``: carphone at its native 176x144, bikes from
frame 200 at 128x128) the teacher's encoder makes the latents once; every decoder decodes those same
latents and is scored against the real clip (PSNR, SSIM, and VMAF at the viewing size its model was fitted
to: lab.eval.vmaf). Timing follows ``lab.eval.bench``:
each decoder decodes the first clip's latents, all are warmed up, then the timed repeats are
interleaved (D1, D2, ..., D1, D2, ...) so load changes on a shared machine hit all alike, and the
median is reported as seconds per 8 output frames (median x 8 / frames decoded).
"""

from __future__ import annotations

import logging
import statistics
from pathlib import Path
from types import SimpleNamespace

import torch

from lab.data.heldout import HELDOUT, load_heldout
from lab.errors import LabError
from lab.files import atomic_write_text
from lab.runtime.timing import timed
from lab.eval.metrics import psnr, psnr_by_latent_frame, ssim
from lab.models.interface import VideoDecoder
from lab.eval.vmaf import VMAF, vmaf_note as note_on_vmaf
from lab.progress import Progress
from lab.eval.bench import load_for_bench, split_runtime
from lab.models.registry import get_entry, list_entries
from lab import paths
from lab.cards import read_provenance
from lab.runs.store import RunReader

log = logging.getLogger("lab")

DEFAULT_REPORT = "docs/results/lightweight-mini-wan.md"


def heldout_videos(teacher: VideoDecoder, frames: int = 17, clips: list[str] | None = None) -> dict:
    """{held-out clip name: real video (1, 3, T, H, W) in [-1, 1]} fitted to the teacher's grid."""
    known = {c.name: c for c in HELDOUT}
    names = list(clips or known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise LabError(f"unknown held-out clip(s) {unknown}; held-out clips: {', '.join(known)}")
    g = teacher.geometry
    grid = SimpleNamespace(frame_multiple=g.t, spatial_multiple=g.spatial)
    return {n: load_heldout(known[n], frames, grid) for n in names}


def _vmaf(x: torch.Tensor, y: torch.Tensor, fps: float) -> tuple[float | None, str | None]:
    """VMAF, or (None, why) when ffmpeg/libvmaf cannot score here: the table then says why."""
    acc = VMAF(fps=fps, threads=1)
    try:
        return acc.update(x, y).compute(), None
    except LabError as exc:
        return None, str(exc).splitlines()[0]
    finally:
        acc.close()


def _load(spec: str, device, dtype) -> VideoDecoder:
    """A registered name or folder, optionally with a runtime as in bench (``NAME@chunkK``: a Wan-family
    decoder decoding K latent frames per causal call, lab.runtime.chunked)."""

    runtime = split_runtime(spec)[1]
    if runtime is not None and runtime.searched:
        raise LabError(f"table: {spec}: give the runtime explicitly (NAME@chunkK, NAME@compile-MODE); @fast and "
                       f"@compile-auto pick it by timing, which python -m lab bench does.")
    # The same seeded load as bench: a decoder without trained weights is the same random one every run.
    return load_for_bench(spec, None, device, dtype).eval()


@torch.no_grad()
def decoder_table(decoders: list[str], *, teacher: str = "mini-wan", clips: list[str] | None = None,
                  frames: int = 17, vmaf: bool = True, repeats: int = 5, warmup: int = 1,
                  device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> dict:
    """Quality on every held-out clip and time per 8 frames of each decoder (a registered name or a
    saved folder), all decoding ``teacher``'s latents. Returns {"rows": [...], ...}."""
    if not decoders:
        raise LabError("table: name at least one decoder (--decoders D1,D2,...: registered names or folders)")
    if repeats < 1 or warmup < 0:
        raise LabError(f"table: --repeats must be >= 1 and --warmup >= 0, got {repeats} and {warmup}")
    device = torch.device(device)
    tea = _load(teacher, device, dtype)
    if not tea.has_encoder:
        raise LabError(f"table: the teacher {tea.name} has no encoder, so it cannot make the latents; "
                       f"pass a VAE (--teacher mini-wan).")
    decs = [tea if spec == teacher else _load(spec, device, dtype) for spec in decoders]
    for spec, dec in zip(decoders, decs):
        if dec.geometry != tea.geometry:
            raise LabError(f"table: {spec} decodes {dec.geometry.channels}-channel latents with compression "
                           f"{dec.geometry.compression}, but {tea.name} makes {tea.geometry.channels}-channel "
                           f"latents with {tea.geometry.compression}; compare decoders of one latent space.")
    videos = heldout_videos(tea, frames, clips)
    latents = {name: tea.encode(v.to(device=device, dtype=dtype)) for name, v in videos.items()}

    rows = [{"decoder": spec, "name": dec.name, "family": dec.family, "decoder_params": dec.decoder_params(),
             "provenance": provenance(spec), "clips": {}} for spec, dec in zip(decoders, decs)]
    vmaf_note = None if vmaf else "not computed (--no-vmaf)"
    with Progress("table", len(videos) * len(decs) + len(decs) * (warmup + repeats), unit="decode") as bar:
        for clip, video in videos.items():
            for row, dec in zip(rows, decs):
                rec = dec.decode(latents[clip]).float().cpu().clamp(-1, 1)
                m = {"psnr": psnr(rec, video), "ssim": ssim(rec, video), "vmaf": None,
                     "psnr_by_latent_frame": psnr_by_latent_frame(rec, video, tea.geometry.t),
                     "frames": int(video.shape[2]), "size": [int(video.shape[3]), int(video.shape[4])]}
                if vmaf:
                    m["vmaf"], why = _vmaf(rec, video, fps=24.0)
                    vmaf_note = vmaf_note or (f"VMAF unavailable: {why}" if why else None)
                row["clips"][clip] = m
                log.info("table: %s on %s: PSNR %.2f dB, SSIM %.4f", row["decoder"], clip, m["psnr"], m["ssim"])
                bar.update(note=f"{row['decoder']} on {clip} scored")

        timing_clip = next(iter(videos))
        z = latents[timing_clip]
        out_frames = tea.geometry.frames_for(z.shape[2])
        for dec in decs:
            for _ in range(warmup):
                dec.decode(z)
                bar.update(note="warm-up")
        times = [[] for _ in decs]
        for r in range(repeats):
            for i, dec in enumerate(decs):
                times[i].append(timed(dec.decode, z))
                bar.update(note=f"timing, repeat {r + 1}/{repeats}")
    for row, ts in zip(rows, times):
        row["seconds"] = statistics.median(ts)
        row["seconds_per_8_frames"] = row["seconds"] * 8 / out_frames
        row["times"] = ts
    first = videos[timing_clip]
    if vmaf_note is None:  # computed: say how, and whether the scores can rank these decoders at all
        vmaf_note = note_on_vmaf([m["vmaf"] for r in rows for m in r["clips"].values()])
    return {"teacher": tea.name, "frames": frames, "clips": {c: list(v.shape) for c, v in videos.items()},
            "timing": {"clip": timing_clip, "frames": out_frames, "size": [int(first.shape[3]), int(first.shape[4])],
                       "latents_shape": list(z.shape), "repeats": repeats, "warmup": warmup,
                       "threads": torch.get_num_threads(), "device": str(device)},
            "vmaf_note": vmaf_note, "rows": rows}


def provenance(spec: str) -> str:
    """Where a decoder's weights come from, in one line: its selection sentence for a shipped folder (from
    its provenance record, the same sentence its card shows), the run and step for a run's ``last``/``best``
    folder, else the registry's weights text."""
    spec = split_runtime(spec)[0]  # a runtime suffix does not change where the weights come from
    registered = {e.name for e in list_entries()}
    folder = paths.checkpoints_dir() / spec if spec in registered else Path(spec)
    record = read_provenance(folder) if folder.is_dir() else None
    line = record.get("selection") if record is not None else _card_selection(folder / "README.md")
    if line:
        return f"{folder.name}/README.md: {line.replace(' figures below', ' figures')}"
    run = folder.parent
    if folder.name in ("last", "best") and (run / "store.sqlite").is_file():
        with RunReader(run) as r:
            meta = r.meta()
        final, cfg = meta.get("final") or {}, meta.get("config") or {}
        step = final.get("step") if folder.name == "last" else final.get("best_step")
        gan = cfg.get("gan", {}).get("start_step") if any("gan" in ph.get("losses", {})
                                                         for ph in cfg.get("phases", [])) else None
        when = f", with the GAN term on from step {gan}" if gan is not None and step is not None and step > gan else ""
        return f"the {folder.name} weights (step {step} of {final.get('step')}{when}) of the run {run}"
    return get_entry(spec).weights if spec in registered else str(folder)


def _card_selection(card: Path) -> str | None:
    """The selection sentence of a card shipped before provenance records existed."""
    if not card.is_file():
        return None
    return next((ln for ln in card.read_text().splitlines() if ln.startswith("These are the weights of")), None)


def _num(v, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def render_markdown(result: dict, command: str | None = None) -> str:
    """The table as a markdown report (what ``python -m lab table --report FILE`` writes)."""
    clips = list(result["clips"])
    t = result["timing"]
    head = ["decoder", "params"] + [f"{c} {m}" for c in clips for m in ("PSNR", "SSIM", "VMAF")] + \
           ["ms / 8 frames"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["rows"]:
        cells = [f"`{r['decoder']}`", f"{r['decoder_params'] / 1e6:.2f}M"]
        for c in clips:
            m = r["clips"][c]
            cells += [_num(m["psnr"], ".2f"), _num(m["ssim"], ".4f"), _num(m["vmaf"], ".1f")]
        cells.append(f"{r['seconds_per_8_frames'] * 1e3:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    sizes = "; ".join(f"{c}: {s[2]} frames at {s[4]}x{s[3]}" for c, s in result["clips"].items())
    parts = [f"# Decoders of {result['teacher']} latents on held-out real clips", ""]
    if command:
        parts += ["Generated by:", "", "```", command, "```", ""]
    parts += [
        f"Every decoder decodes the same latents, made by {result['teacher']}'s encoder from the held-out clips "
        f"({sizes}); PSNR (dB, higher is better), SSIM (higher is better) and VMAF (below) compare the decode "
        f"with the real clip.",
        "",
        *lines,
        "",
        f"Time: median of {t['repeats']} interleaved decodes (after {t['warmup']} warm-up each) of the {t['clip']} "
        f"latents {tuple(t['latents_shape'])} -> {t['frames']} frames at {t['size'][1]}x{t['size'][0]}, in one process "
        f"on {t['device']} with {t['threads']} torch thread(s), scaled to 8 frames (median x 8 / {t['frames']}).",
    ]
    parts += ["", "Weights:", ""] + [f"- `{r['decoder']}`: {r['provenance']}" for r in result["rows"]]
    if result.get("vmaf_note"):
        note = result["vmaf_note"]
        parts += ["", note if note.startswith("VMAF") else f"VMAF: {note}"]
    return "\n".join(parts) + "\n"


def write_report(result: dict, path: str | Path, command: str | None = None) -> Path:
    """Write the markdown report atomically (a temporary file renamed into place)."""
    return atomic_write_text(path, render_markdown(result, command))
