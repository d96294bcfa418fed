"""The method on a real decoder the lab did not train: channel selection and a short distillation of the
TAEF2 decoder (madebyollin/taesd, MIT; lab.families.taef2), on CPU. Writes docs/results/real-decoder-taef2.md
and .json.

    python scripts/real_decoder_taef2.py                       # weights from ../shared/assets/weights/taef2
    python scripts/real_decoder_taef2.py --weights DIR --steps 300 --out /tmp/taef2.md   # shorter distillation

1. Round trip of the released autoencoder on real frames (PSNR against the real clip).
2. Before any training: PSNR of each pruned decoder against the teacher's own decode of held-out real
   clips, at 50%, 25% and 12.5% of every channel group, for independence, magnitude and the mean (min-max)
   of 5 random seeds. One analysis (calibration Grams) serves every criterion and every student gets the
   same least-squares fold, so only the channel choice differs.
3. A short CPU distillation (lab.distill, three phases) of the independence students at 25% and 12.5%;
   retention = student PSNR / teacher PSNR against the real held-out clips, and the CPU speed of each
   decoder against the teacher's, timed side by side in one process (lab.eval.bench).
Calibration and training use the lab's training clips only (bbb-128, bigbuckbunny, bikes up to frame 192);
held out: carphone (never seen) and bikes from frame 200.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from lab.analysis import analyze
from lab.data.heldout import BIKES_HELDOUT_START, BIKES_TRAIN_STOP
from lab.data.samples import resolve_clip
from lab.data.video import load_clip
from lab.demo.distill_step import distill_student
from lab.eval.bench import bench
from lab.eval.metrics import PSNR, psnr
from lab.models import load_decoder
from lab.notebook.experiments import compare_criteria
from lab import paths
from lab.paths import REPO_ROOT
from lab.prune import prune

CALIBRATION = [("bbb-128", 0, (128, 128)), ("bigbuckbunny", 0, (256, 256)), ("bikes", 0, (256, 256))]
HELD_OUT = [("carphone", 0, (144, 176)), ("bikes", BIKES_HELDOUT_START, (256, 256))]
RATIOS = (0.5, 0.25, 0.125)
DISTILLED = (0.25, 0.125)


def encode(teacher, specs, frames):
    """Real clips (name, start, size) -> (videos, latents, names)."""
    videos, latents, names = [], [], []
    for clip, start, size in specs:
        v = load_clip(resolve_clip(clip), frames=frames, size=size, start=start, frame_multiple=1, spatial_multiple=8)
        videos.append(v)
        latents.append(teacher.encode(v))
        names.append(f"{clip}@{start}" if start else clip)
    return videos, latents, names


def psnr_all(decoder, latents, targets) -> tuple[float, list[float]]:
    total, each = PSNR(), []
    for z, t in zip(latents, targets):
        out = decoder.decode(z)
        total.update(out, t)
        each.append(psnr(out, t))
    return total.compute(), each


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None, help="folder with taef2_decoder.pth and taef2_encoder.pth")
    p.add_argument("--calib-frames", type=int, default=8)
    p.add_argument("--frames", type=int, default=17, help="frames per held-out clip")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=1000, help="distillation steps per student, at most (phases end on plateaus; 0: skip)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(REPO_ROOT / "docs" / "results" / "real-decoder-taef2.md"))
    p.add_argument("--render", default=None, metavar="JSON", help="only rewrite --out from a saved .json of this script")
    args = p.parse_args(argv)
    if args.render:
        result = json.loads(Path(args.render).read_text())
        Path(args.out).write_text(report(result, result.get("argv", [])))
        return result
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    teacher = load_decoder("taef2", weights=args.weights)
    _, calib, calib_names = encode(teacher, CALIBRATION, args.calib_frames)
    calib_names = [n if n != "bikes" else f"bikes[0:{args.calib_frames}]" for n in calib_names]
    held_videos, held, held_names = encode(teacher, HELD_OUT, args.frames)
    teacher_real, teacher_real_each = psnr_all(teacher, held, held_videos)
    print(f"teacher round trip on held-out clips: {teacher_real:.2f} dB {teacher_real_each}", file=sys.stderr)
    analysis = analyze(teacher, calib, clip_names=calib_names)
    refs = [teacher.decode(z) for z in held]

    selection = []
    for r in RATIOS:
        rows = compare_criteria(teacher, analysis, r, held, refs, random_seeds=args.seeds)
        selection += rows
        print(f"keep {r}: " + ", ".join(f"{x['criterion']} {x['psnr']:.2f}" for x in rows), file=sys.stderr)

    distilled = []
    if args.steps > 0:
        work = Path(tempfile.mkdtemp(prefix="taef2-distill-"))
        # The validation clip only sizes the trainer's checks and picks its 'best' student (the table takes the
        # last): the Wan-generated clip where ../shared is present, a clip that is neither trained on nor scored.
        shared = paths.shared_assets_dir()
        wan_clip = shared / "videos" / "wan2_1_generated_832x480_81f.mp4" if shared else None
        val = [str(wan_clip)] if wan_clip is not None and wan_clip.is_file() else []
        folders = ["taef2"]
        for r in DISTILLED:
            student, info = prune(teacher, r, "independence", analysis=analysis)
            before, _ = psnr_all(student, held, held_videos)
            ts = time.perf_counter()
            trained, dinfo = distill_student(teacher, student, ["bbb-128", "bigbuckbunny", f"bikes[0:{BIKES_TRAIN_STOP}]"],
                                             steps=args.steps, frames=4, size=(128, 128), run_dir=work / f"keep{r}",
                                             val_clips=val, seed=0,
                                             teacher_weights=args.weights)
            after, after_each = psnr_all(trained, held, held_videos)
            vs_teacher, _ = psnr_all(trained, held, refs)
            folders.append(dinfo["last"])
            distilled.append({"keep": r, "decoder_params": info["decoder_params"], "steps": dinfo["steps"],
                              "minutes": round((time.perf_counter() - ts) / 60, 1),
                              "psnr_real_before": before, "psnr_real": after, "psnr_real_per_clip": after_each,
                              "psnr_vs_teacher": vs_teacher, "retention_before": before / teacher_real,
                              "retention": after / teacher_real})
            print(f"distilled keep {r}: {after:.2f} dB vs real (retention {after / teacher_real:.3f})", file=sys.stderr)
        speed = bench(folders, frames=4, size=(288, 512), repeats=5, warmup=1, memory=False, macs=True)
        rows = speed["decoders"]  # the teacher first: each row's speedup is against it
        for d, row in zip(distilled, rows[1:]):
            d["cpu_speedup"], d["macs"] = row["speedup"], row.get("macs")
        teacher_macs = rows[0].get("macs")
    result = {"date": datetime.date.today().isoformat(), "teacher": "taef2", "weights": args.weights or "default",
              "teacher_decoder_params": teacher.decoder_params(), "calibration": calib_names,
              "calib_frames": args.calib_frames, "held_out": held_names, "held_out_frames": args.frames,
              "teacher_psnr_real": teacher_real, "teacher_psnr_real_per_clip": teacher_real_each,
              "random_seeds": args.seeds, "selection": selection, "distilled": distilled,
              "teacher_macs": teacher_macs if distilled else None, "threads": args.threads,
              "seconds": round(time.perf_counter() - t0), "argv": list(argv or [])}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    out.write_text(report(result, result["argv"]))
    print(out.read_text())
    return result


def _f(x, nd=2):
    return f"{x:.{nd}f}"


def report(r: dict, argv) -> str:
    rows = {}
    for x in r["selection"]:
        rows.setdefault(x["keep"], {})[x["criterion"]] = x
    lines = [
        "# The method on a real decoder: TAEF2",
        "",
        f"Written by `python scripts/real_decoder_taef2.py{' ' + ' '.join(argv) if argv else ''}` (CPU, "
        f"{r['threads']} threads, {r['date']}, {r['seconds'] // 60} min).",
        "",
        "TAEF2 is the tiny autoencoder for FLUX.2's latent space (madebyollin/taesd, MIT): a real decoder trained "
        "at scale by someone else, with 32-channel latents at /8 and 64 channels throughout. The lab loads the "
        f"released weights exactly (lab/families/taef2/model.py) and decodes video frame by frame. Its decoder has "
        f"{r['teacher_decoder_params']:,} parameters, of which 1,152 are zero biases the lab adds so the fold "
        f"has a place for the dropped channels' mean.",
        "",
        f"- **Teacher round trip** on the held-out clips ({', '.join(r['held_out'])}; {r['held_out_frames']} frames; "
        f"carphone at 176x144, bikes at 256x256): {_f(r['teacher_psnr_real'])} dB against the real frames "
        f"({', '.join(_f(v) for v in r['teacher_psnr_real_per_clip'])}).",
        f"- **Calibration:** {', '.join(r['calibration'])}, {r['calib_frames']} frames each (bbb-128 at 128x128, "
        "the others at 256x256). The held-out frames are never used for calibration or training.",
        "- **Pruning:** every channel group at the same keep ratio (each stage's residual stream and both hidden "
        "widths of every block; the pooled branch keeps its 256 channels), and every criterion gets the same "
        "least-squares fold.",
        "",
        "## Before any training: PSNR (dB) of the pruned decoder against the teacher's decode",
        "",
        f"Pooled over the held-out clips; random is the mean of {r['random_seeds']} seeds (min-max).",
        "",
        "| keep | decoder params | independence | magnitude | random, mean (min-max) | per clip: independence / magnitude / random |",
        "|---|---|---|---|---|---|",
    ]
    for keep, c in rows.items():
        ind, mag, rnd = c["independence"], c["magnitude"], c["random"]
        best = max(ind["psnr"], mag["psnr"], rnd["psnr"])

        def cell(x, text):
            return f"**{text}**" if x["psnr"] == best else text
        per = " ; ".join(f"{_f(a, 1)} / {_f(b, 1)} / {_f(cc, 1)}" for a, b, cc in
                         zip(ind["per_clip"], mag["per_clip"], rnd["per_clip"]))
        lines.append(f"| {keep:.3g} | {ind['decoder_params']:,} | {cell(ind, _f(ind['psnr']))} | "
                     f"{cell(mag, _f(mag['psnr']))} | {cell(rnd, _f(rnd['psnr']))} "
                     f"({_f(rnd['psnr_min'])}-{_f(rnd['psnr_best'])}) | {per} |")
    lines += ["", "Per clip: " + ", ".join(r["held_out"]) + ".", "", "What it shows:", ""]
    for keep, c in rows.items():
        others = {k: v["psnr"] for k, v in c.items() if k != "independence"}
        nxt = max(others, key=others.get)
        lead = c["independence"]["psnr"] - others[nxt]
        lines.append(f"- keep {keep:.3g}: independence {'leads' if lead > 0 else 'trails'} the next criterion "
                     f"({nxt}) by {abs(lead):.2f} dB; magnitude is {c['magnitude']['psnr'] - c['random']['psnr']:+.2f} dB "
                     f"from the random mean.")
    lines.append("")
    if r["distilled"]:
        lines += [
            "## After a short CPU distillation (independence students)",
            "",
            "Three phases of lab.distill (align, joint, finetune), 4-frame 128x128 windows of the training clips. "
            "Retention is the student's PSNR against the real held-out frames over the teacher's "
            f"({_f(r['teacher_psnr_real'])} dB). The speedup is the teacher's median CPU decode time over the "
            "student's, 4 frames at 288x512, timed side by side in one process.",
            "",
            "| keep | decoder params | steps | minutes | PSNR vs real, pruned -> distilled | retention, pruned -> distilled | PSNR vs teacher | CPU speedup | MACs |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for d in r["distilled"]:
            macs = f"{d['macs'] / 1e9:.1f}G of {r['teacher_macs'] / 1e9:.1f}G" if d.get("macs") and r.get("teacher_macs") else "-"
            lines.append(f"| {d['keep']:.3g} | {d['decoder_params']:,} | {d['steps']} | {d['minutes']} | "
                         f"{_f(d['psnr_real_before'])} -> {_f(d['psnr_real'])} | {_f(d['retention_before'], 3)} -> "
                         f"**{_f(d['retention'], 3)}** | {_f(d['psnr_vs_teacher'])} | {_f(d['cpu_speedup'])}x | {macs} |")
        lines.append("")
    lines += ["Numbers: the .json file next to this one.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
