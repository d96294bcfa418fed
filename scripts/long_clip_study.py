"""Does a decoder hold its quality past the clip length it trained on? Decode the held-out clips longer than the
cards do (49 frames instead of 17) and report PSNR by stretch of the clip, against the real clip and against the
teacher's decode of the same latents.

A causal video decoder carries history in its caches. One trained on W-frame windows has only ever seen the first
latent frames of a clip (a Flash-VAED student's 9 frames: 3 Wan latent frames; a mini teacher's 17: 5), so it can
match its reference there and drift after: the whole-clip PSNR at the cards' 17 frames averages most of that away,
and a user decodes 81 frames. The stretches are frames 1-9, 10-17 and 18-N (whole latent frames for Wan, t = 4,
and LTX, t = 8); ``lab.eval.metrics.psnr_by_latent_frame`` gives the finest curve (``lab eval`` prints it).

    python scripts/long_clip_study.py --teacher mini-wan --decoders mini-wan,data/checkpoints/mini-wan-flash \\
        --frames 49 --json docs/results/long-clips.json
    python scripts/long_clip_study.py --teacher mini-ltx --decoders mini-ltx,data/checkpoints/mini-ltx-flash \\
        --frames 49 --json docs/results/long-clips.json   # a second teacher's study joins the file
    python scripts/long_clip_study.py --table docs/results/long-clips.json   # their markdown tables again
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.eval.metrics import psnr  # noqa: E402
from lab.eval.table import heldout_videos  # noqa: E402
from lab.models import load_decoder  # noqa: E402

#: (first, last) output frames of each stretch, 1-based and inclusive; None: to the clip's end
STRETCHES = [(1, 9), (10, 17), (18, None)]


def stretches(frames: int) -> list[tuple[int, int]]:
    """The stretches a clip of ``frames`` frames has, as (first, last), 1-based inclusive."""
    return [(a, min(b or frames, frames)) for a, b in STRETCHES if a <= frames]


def scores(x: torch.Tensor, y: torch.Tensor) -> dict:
    """Whole-clip PSNR and PSNR of each stretch ('1-9', '10-17', '18-49') of decode ``x`` against ``y``."""
    out = {"all": round(psnr(x, y), 3)}
    for a, b in stretches(x.shape[2]):
        out[f"{a}-{b}"] = round(psnr(x[:, :, a - 1:b], y[:, :, a - 1:b]), 3)
    return out


@torch.no_grad()
def study(teacher: str, decoders: list[str], frames: int) -> dict:
    """Each decoder's scores on each held-out clip of ``teacher``'s latents (``frames`` frames)."""
    tea = load_decoder(teacher, dtype=torch.float32).eval()
    rows = []
    clips = {}  # clip: (video, latents, the teacher's decode), made once for every decoder
    for clip, video in heldout_videos(tea, frames).items():
        z = tea.encode(video)
        clips[clip] = (video, z, tea.decode(z).float().clamp(-1, 1))
    for spec in decoders:
        dec = tea if spec == teacher else load_decoder(spec, dtype=torch.float32).eval()
        for clip, (video, z, ref) in clips.items():
            out = ref if dec is tea else dec.decode(z).float().clamp(-1, 1)
            row = {"decoder": spec, "clip": clip, "frames": int(video.shape[2]), "vs_clip": scores(out, video)}
            if dec is not tea:
                row["vs_teacher"] = scores(out, ref)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return {"teacher": teacher, "frames": frames, "rows": rows}


def label(spec: str) -> str:
    """A decoder's name in the table: a folder's name, with its run's for a run's last/best weights."""
    p = Path(spec)
    return f"{p.parent.name}/{p.name}" if p.name in ("last", "best") else p.name


def table(result: dict) -> str:
    """The study as a markdown table: PSNR (dB) by stretch against the clip (and the teacher's decode)."""
    keys = list(result["rows"][0]["vs_clip"])
    heads = [f"frames {k}" if k != "all" else "whole clip" for k in keys]
    lines = [f"| decoder | clip | against | {' | '.join(heads)} |", "|---|---|---|" + "---|" * len(keys)]
    for r in result["rows"]:
        name = label(r["decoder"])
        for what in ("vs_clip", "vs_teacher"):
            if what in r:
                against = "the clip" if what == "vs_clip" else f"{result['teacher']}'s decode"
                lines.append(f"| {name} | {r['clip']} | {against} | "
                             + " | ".join(f"{r[what][k]:.2f}" for k in keys) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", default="mini-wan", help="the VAE whose encoder makes the latents")
    p.add_argument("--decoders", default=None, help="comma-separated names or folders (the teacher's name: itself)")
    p.add_argument("--frames", type=int, default=49, help="frames per held-out clip (1 + 8k fits Wan and LTX)")
    p.add_argument("--table", default=None, metavar="JSON", help="print the markdown table of a study's JSON and exit")
    p.add_argument("--json", default=None,
                   help="write the study into this file (it keeps one study per teacher: another teacher's stays)")
    args = p.parse_args(argv)
    if args.table:
        print("\n\n".join(table(st) for st in json.loads(Path(args.table).read_text())["studies"]))
        return 0
    if not args.decoders:
        p.error("name the decoders (--decoders D1,D2) or a study to print (--table JSON)")
    torch.set_num_threads(1)
    result = study(args.teacher, args.decoders.split(","), args.frames)
    print(table(result))
    if args.json:  # one study per teacher in the file: this one replaces the same teacher's, keeps the others
        path = Path(args.json)
        studies = json.loads(path.read_text())["studies"] if path.is_file() else []
        studies = [st for st in studies if st["teacher"] != result["teacher"]] + [result]
        path.write_text(json.dumps({"studies": studies}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
