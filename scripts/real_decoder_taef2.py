"""The method on a real decoder the lab did not train: channel selection and a short distillation of the
TAEF2 decoder (madebyollin/taesd, MIT; lab.families.taef2), on the CPU or a GPU. Writes
docs/results/real-decoder-taef2.md and .json.

    python scripts/real_decoder_taef2.py                       # weights from ../shared/assets/weights/taef2
    python scripts/real_decoder_taef2.py --weights DIR --steps 300 --out /tmp/taef2.md   # shorter distillation
    python scripts/real_decoder_taef2.py --device cuda --minutes 1 --batch 16 --crop 256 --dtype bf16 \
        --keeps 0.5,0.25,0.125 --bench-size 1024x1024 --bench-frames 8 --bench-dtype fp16   # the device run's phase

1. Round trip of the released autoencoder on real frames (PSNR against the real clip).
2. Before any training: PSNR of each pruned decoder against the teacher's own decode of held-out real
   clips, at 50%, 25% and 12.5% of every channel group, for independence, magnitude and the mean (min-max)
   of 5 random seeds. One analysis (calibration Grams) serves every criterion and every student gets the
   same least-squares fold, so only the channel choice differs.
3. A short distillation (lab.distill, three phases; ``--device``, a step bound and with ``--minutes`` a time
   budget per student) of the independence students (``--keeps``, default 25% and 12.5%); retention = student
   PSNR / teacher PSNR against the real held-out clips, and the speed of each decoder against the teacher's on
   the same device, timed side by side in one process (lab.eval.bench).
Calibration and training use the lab's training clips only (bbb-128 where the crop fits its 128x128, bigbuckbunny,
bikes up to frame 192); held out: carphone (never seen) and bikes from frame 200. Selection and held-out scoring
run on the CPU wherever the students train, so the tables before training are the same on every machine.
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
from lab.cli.common import parse_size
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
DISTILLED = "0.25,0.125"


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
    p.add_argument("--minutes", type=float, default=0.0,
                   help="training minutes per student besides --steps (0: steps only), shared among the phases")
    p.add_argument("--keeps", default=DISTILLED, help="comma-separated widths to distil (of the selection's 0.5,0.25,0.125)")
    p.add_argument("--device", default="cpu", help="where the students are distilled and timed")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"), help="distillation precision (bf16: autocast)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--crop", type=int, default=128, help="training crop, px")
    p.add_argument("--train-frames", type=int, default=4)
    p.add_argument("--bench-size", type=parse_size, default=(288, 512), help="HxW of the timed decodes")
    p.add_argument("--bench-frames", type=int, default=4)
    p.add_argument("--bench-dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--previous", default=None, metavar="JSON",
                   help="an earlier run's .json (e.g. the CPU run this replaces): its students' table is kept beside")
    p.add_argument("--reuse-selection", action="store_true",
                   help="take the table before training from --previous (same clips and frames) instead of recomputing it")
    p.add_argument("--out", default=str(REPO_ROOT / "docs" / "results" / "real-decoder-taef2.md"))
    p.add_argument("--render", default=None, metavar="JSON", help="only rewrite --out from a saved .json of this script")
    args = p.parse_args(argv)
    if args.render:
        result = json.loads(Path(args.render).read_text())
        Path(args.out).write_text(report(result, result.get("argv", [])))
        return result
    torch.set_num_threads(args.threads)
    keeps = [float(k) for k in args.keeps.split(",") if k]
    if not set(keeps) <= set(RATIOS):
        raise SystemExit(f"--keeps: each width must be one of {RATIOS}, got {args.keeps}")
    device = torch.device(args.device)
    t0 = time.perf_counter()
    teacher = load_decoder("taef2", weights=args.weights)
    _, calib, calib_names = encode(teacher, CALIBRATION, args.calib_frames)
    calib_names = [n if n != "bikes" else f"bikes[0:{args.calib_frames}]" for n in calib_names]
    held_videos, held, held_names = encode(teacher, HELD_OUT, args.frames)
    teacher_real, teacher_real_each = psnr_all(teacher, held, held_videos)
    print(f"teacher round trip on held-out clips: {teacher_real:.2f} dB {teacher_real_each}", file=sys.stderr)
    analysis = analyze(teacher, calib, clip_names=calib_names)
    refs = [teacher.decode(z) for z in held]

    prev = json.loads(Path(args.previous).read_text()) if args.previous else None
    selection, seeds, selection_from = [], args.seeds, None
    if args.reuse_selection:
        # The table before training depends only on the weights, clips and frames (up to float rounding): a device
        # run reuses the earlier run's instead of spending a minute of GPU time recomputing it on the CPU. The
        # teacher's round trip on the held-out clips stands for its weights (a path may differ, not they); another
        # CPU sums in another order, so it is compared to 0.01 dB.
        if prev is None:
            raise SystemExit("--reuse-selection takes the table from --previous JSON; name that run")
        ours = {"calibration": calib_names, "calib_frames": args.calib_frames, "held_out": held_names,
                "held_out_frames": args.frames}
        differs = [k for k in ours if ours[k] != prev.get(k)]
        if abs(prev.get("teacher_psnr_real", float("inf")) - teacher_real) > 0.01:
            differs.append("teacher_psnr_real")
        if differs:
            raise SystemExit(f"--reuse-selection: the --previous run differs in {differs}; drop the flag")
        selection, seeds, selection_from = prev["selection"], prev["random_seeds"], prev["date"]
    for r in RATIOS if not selection else ():
        rows = compare_criteria(teacher, analysis, r, held, refs, random_seeds=args.seeds)
        selection += rows
        print(f"keep {r}: " + ", ".join(f"{x['criterion']} {x['psnr']:.2f}" for x in rows), file=sys.stderr)

    distilled, clips, teacher_macs, teacher_ms = [], [], None, None
    if args.steps > 0:
        work = Path(tempfile.mkdtemp(prefix="taef2-distill-"))
        # The validation clip only sizes the trainer's checks and picks its 'best' student (the table takes the
        # last): the Wan-generated clip where ../shared is present, a clip that is neither trained on nor scored.
        shared = paths.shared_assets_dir()
        wan_clip = shared / "videos" / "wan2_1_generated_832x480_81f.mp4" if shared else None
        val = [str(wan_clip)] if wan_clip is not None and wan_clip.is_file() else []
        folders = ["taef2"]
        clips = (["bbb-128"] if args.crop <= 128 else []) + ["bigbuckbunny", f"bikes[0:{BIKES_TRAIN_STOP}]"]
        for r in keeps:
            student, info = prune(teacher, r, "independence", analysis=analysis)
            before, _ = psnr_all(student, held, held_videos)
            ts = time.perf_counter()
            trained, dinfo = distill_student(teacher, student, clips, steps=args.steps, frames=args.train_frames,
                                             size=(args.crop, args.crop), run_dir=work / f"keep{r}",
                                             val_clips=val, seed=0, teacher_weights=args.weights,
                                             device=args.device, batch=args.batch, minutes=args.minutes,
                                             dtype=args.dtype)
            minutes = round((time.perf_counter() - ts) / 60, 1)  # the distillation's, scoring aside
            after, after_each = psnr_all(trained, held, held_videos)
            vs_teacher, _ = psnr_all(trained, held, refs)
            folders.append(dinfo["last"])
            distilled.append({"keep": r, "decoder_params": info["decoder_params"], "steps": dinfo["steps"],
                              "minutes": minutes,
                              "psnr_real_before": before, "psnr_real": after, "psnr_real_per_clip": after_each,
                              "psnr_vs_teacher": vs_teacher, "retention_before": before / teacher_real,
                              "retention": after / teacher_real})
            print(f"distilled keep {r}: {after:.2f} dB vs real (retention {after / teacher_real:.3f})", file=sys.stderr)
        speed = bench(folders, weights=args.weights, device=device, dtype=args.bench_dtype, frames=args.bench_frames,
                      size=args.bench_size, repeats=5, warmup=1, memory=False, macs=True)
        rows = speed["decoders"]  # the teacher first: each row's speedup is against it
        # A decoder that fails on the device is an error row (lab.eval.bench): its figures are left out, the
        # students' scores stay.
        ms = [round(row["seconds"] * 1e3, 2) if "seconds" in row else None for row in rows]
        for d, row, t in zip(distilled, rows[1:], ms[1:]):
            d.update(speedup=row.get("speedup") if ms[0] else None, macs=row.get("macs"), ms=t,
                     **({"bench_error": row["error"]} if "error" in row else {}))
        teacher_macs, teacher_ms = rows[0].get("macs"), ms[0]
    result = {"date": datetime.date.today().isoformat(), "teacher": "taef2", "weights": args.weights or "default",
              "teacher_decoder_params": teacher.decoder_params(), "calibration": calib_names,
              "calib_frames": args.calib_frames, "held_out": held_names, "held_out_frames": args.frames,
              "teacher_psnr_real": teacher_real, "teacher_psnr_real_per_clip": teacher_real_each,
              "random_seeds": seeds, "selection": selection, "selection_from": selection_from, "distilled": distilled,
              "teacher_macs": teacher_macs, "teacher_ms": teacher_ms,
              "device": device_name(device), "threads": args.threads,
              "distill": {"steps": args.steps, "minutes": args.minutes, "batch": args.batch, "crop": args.crop,
                          "frames": args.train_frames, "dtype": args.dtype, "clips": clips},
              "bench": {"size": list(args.bench_size), "frames": args.bench_frames, "dtype": args.bench_dtype},
              "seconds": round(time.perf_counter() - t0), "argv": list(argv or [])}
    if prev is not None:
        result["previous"] = {k: prev[k] for k in ("date", "device", "threads", "distill", "bench", "distilled",
                                                   "teacher_psnr_real", "teacher_macs", "teacher_ms", "argv") if k in prev}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    out.write_text(report(result, result["argv"]))
    print(out.read_text())
    return result


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def where(r: dict) -> str:
    dev = r.get("device", "CPU")
    cpu = f"{r['threads']} threads"
    return f"CPU, {cpu}" if dev == "CPU" else f"{dev}; selection and scoring on the CPU, {cpu}"


def _f(x, nd=2):
    return f"{x:.{nd}f}"


def distill_section(r: dict, title: str) -> list[str]:
    """The table of a run's distilled students (``title`` may name ``{dev}`` and ``{date}``)."""
    dev = r.get("device", "CPU")
    # Runs written before the GPU options: 4-frame 128x128 windows, batch 1, fp32; timed at 4x288x512 fp32.
    t = {"minutes": 0, "batch": 1, "crop": 128, "frames": 4, "dtype": "fp32", **(r.get("distill") or {})}
    b = {"size": [288, 512], "frames": 4, "dtype": "fp32", **(r.get("bench") or {})}
    budget = f", at most {t['minutes']:g} min per student" if t["minutes"] else ""
    lines = [
        f"## {title.format(dev=dev, date=r['date'])}",
        "",
        f"Three phases of lab.distill (align, joint, finetune), {t['frames']}-frame {t['crop']}x{t['crop']} windows "
        f"of the training clips, {t['batch']} a step, {t['dtype']}{budget}. "
        "Retention is the student's PSNR against the real held-out frames over the teacher's "
        f"({_f(r['teacher_psnr_real'])} dB). The speedup is the teacher's median decode time over the "
        f"student's on the {dev}, {b['frames']} frames at {b['size'][0]}x{b['size'][1]} in {b['dtype']}, "
        "timed side by side in one process"
        + (f" (teacher {r['teacher_ms']:g} ms)." if r.get("teacher_ms") else "."),
        "",
        "| keep | decoder params | steps | minutes | PSNR vs real, pruned -> distilled | retention, pruned -> distilled "
        f"| PSNR vs teacher | {dev} speedup | MACs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in r["distilled"]:
        macs = f"{d['macs'] / 1e9:.1f}G of {r['teacher_macs'] / 1e9:.1f}G" if d.get("macs") and r.get("teacher_macs") else "-"
        speedup = d.get("speedup", d.get("cpu_speedup"))
        speedup = f"{_f(speedup)}x" if speedup else "-"
        lines.append(f"| {d['keep']:.3g} | {d['decoder_params']:,} | {d['steps']} | {d['minutes']} | "
                     f"{_f(d['psnr_real_before'])} -> {_f(d['psnr_real'])} | {_f(d['retention_before'], 3)} -> "
                     f"**{_f(d['retention'], 3)}** | {_f(d['psnr_vs_teacher'])} | {speedup} | {macs} |")
    lines.append("")
    return lines


def report(r: dict, argv) -> str:
    rows = {}
    for x in r["selection"]:
        rows.setdefault(x["keep"], {})[x["criterion"]] = x
    lines = [
        "# The method on a real decoder: TAEF2",
        "",
        f"Written by `python scripts/real_decoder_taef2.py{' ' + ' '.join(argv) if argv else ''}` "
        f"({where(r)}; {r['date']}, {r['seconds'] // 60} min).",
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
        f"Pooled over the held-out clips; random is the mean of {r['random_seeds']} seeds (min-max)."
        + (f" From the run of {r['selection_from']} (the same weights, clips and frames: the table is deterministic)."
           if r.get("selection_from") else ""),
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
        lines += distill_section(r, "After a short distillation on the {dev} (independence students)")
    if r.get("previous", {}).get("distilled"):
        lines += distill_section(r["previous"], "The earlier run, for comparison ({dev}, {date})")
    lines += ["Numbers: the .json file next to this one.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
