"""Which validation clip picks the best shipped step? Score every kept checkpoint of finished distillation runs on
candidate validation clips and on the held-out clips, then say what each choice of validation clip would have
shipped.

A run validates on one clip (``data.val_clips``) and ships its best validation step (``--weights best``). The lab
validated on bigbuckbunny, a longer excerpt of the same film as the training clip bbb-128, so a selection on it may
favour that film. This script measures it: for each run (kept with ``checkpoint_every = eval_every`` and a large
``keep_checkpoints``, so every evaluated step is on disk) it decodes each checkpoint's weights (rounded to fp16 as
lightweight decoders ship) on

* each candidate validation clip, as the trainer validates (``val_frames`` frames at ``val_size``, from frame 0);
* the held-out clips as the cards score them (17 frames at full size, carphone and bikes from frame 200).

and reports, per candidate, the step it selects (the first step with the highest validation PSNR, as the trainer
keeps its best) and the held-out PSNR there, beside the last step and the held-out optimum (context only: picking
by it would select on the test set). The held-out clips never feed a selection here either: each selection reads
only its validation clip's column.

    python scripts/selection_study.py --runs runs/lightweight/efficientvit-32-wan --val bigbuckbunny,city \\
        --json docs/results/selection-study.json
    python scripts/selection_study.py --table docs/results/selection-study.json   # its markdown table again
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.distill.data import load_val_clips  # noqa: E402
from lab.distill.evaluation import validation_metrics  # noqa: E402
from lab.distill.trainer import DistillTask  # noqa: E402
from lab.eval.metrics import psnr  # noqa: E402
from lab.eval.table import heldout_videos  # noqa: E402
from lab.models import load_decoder  # noqa: E402
from lab.runs.store import RunReader  # noqa: E402
from lab.training.checkpoints import CKPT_WEIGHTS, CheckpointFolder, checkpoint_step  # noqa: E402


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    """(step, weights file) of every complete checkpoint in ``run``, by step (lab.training.checkpoints says which
    are complete)."""
    folder = CheckpointFolder(run, DistillTask.state_keys, DistillTask.weights_prefix)
    return [(checkpoint_step(p), p / CKPT_WEIGHTS) for p in folder.complete()]


def student_state(weights: Path, fp16: bool) -> dict:
    """The weights a checkpoint's run validates and ships: its EMA (keys ``ema.*``) when the run keeps one, else the
    student (``student.*``); ``fp16``: rounded through fp16 as lightweight decoders ship (validation reads them as
    the trainer does, in float32)."""
    state = load_file(str(weights))
    prefix = "ema." if any(k.startswith("ema.") for k in state) else "student."
    return {k[len(prefix):]: (v.half().float() if fp16 else v) for k, v in state.items() if k.startswith(prefix)}


@torch.no_grad()
def study(run: Path, val_names: list[str], frames: int = 17, fp16: bool = True,
          val_sizes: list[int] | None = None) -> dict:
    """Every checkpoint of ``run`` scored on each of ``val_names`` and on the held-out clips (``frames`` frames;
    ``fp16``: the held-out figures of weights rounded to fp16, as lightweight decoders ship). ``val_sizes``: score
    each validation clip at these sizes too (columns ``val/CLIP@SIZE``) instead of the run's own ``val_size``
    (columns ``val/CLIP``). Beside each PSNR against the real clip, the PSNR against the teacher's decode
    (``val_teacher/...``, ``heldout_teacher/...``): what a distilled student is trained to match."""
    with RunReader(run) as r:
        cfg = r.meta()["config"]
    teacher = load_decoder(cfg["teacher"], weights=cfg.get("teacher_weights"), dtype=torch.float32).eval()
    d = cfg["data"]
    sized = [(n, d["val_size"], n) for n in val_names] if not val_sizes else \
        [(n, s, f"{n}@{s}") for n in val_names for s in val_sizes]
    vals = {label: load_val_clips(teacher, [n], d["val_frames"], s) for n, s, label in sized}
    held = {}
    for name, video in heldout_videos(teacher, frames).items():
        z = teacher.encode(video)
        decoded = teacher.decode(z).float().clamp(-1, 1)
        held[name] = (z, video, decoded, psnr(decoded, video))
    student = load_decoder(str(run / "init"), dtype=torch.float32).eval()
    rows = []
    for step, weights in checkpoints(run):
        student.load_state_dict(student_state(weights, fp16=False))
        row = {"step": step}
        for label, clips in vals.items():
            m = validation_metrics(student, clips, nullcontext())
            row[f"val/{label}"] = round(m["val/psnr"], 3)
            row[f"val_teacher/{label}"] = round(m["val/psnr_vs_teacher"], 3)
        student.load_state_dict(student_state(weights, fp16=fp16))
        for n, (z, video, decoded, _) in held.items():
            out = student.decode(z).float().clamp(-1, 1)
            row[f"heldout/{n}"] = round(psnr(out, video), 3)
            row[f"heldout_teacher/{n}"] = round(psnr(out, decoded), 3)
        for key in ("heldout", "heldout_teacher"):
            row[f"{key}/mean"] = round(sum(row[f"{key}/{n}"] for n in held) / len(held), 3)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    labels = list(vals)
    return {"run": str(run), "teacher": cfg["teacher"], "trained_val_clips": d["val_clips"],
            "trained_val_size": d["val_size"], "heldout_fp16": fp16,
            "teacher_heldout": {n: round(t, 3) for n, (_, _, _, t) in held.items()}, "rows": rows,
            "selections": selections(rows, labels, list(held)), "agreement": agreement(rows, labels),
            "agreement_vs_teacher": agreement(rows, labels, column="val_teacher", target="heldout_teacher/mean")}


def selections(rows: list[dict], val_names: list[str], held: list[str]) -> dict:
    """What each validation clip (and their mean) would ship, the last step, and the held-out optimum."""
    def at(row: dict, how: str) -> dict:
        vs_teacher = {"mean_vs_teacher": row["heldout_teacher/mean"]} if "heldout_teacher/mean" in row else {}
        return {"how": how, "step": row["step"], **{n: row[f"heldout/{n}"] for n in [*held, "mean"]}, **vs_teacher}

    out = {}
    for n in val_names:
        best = max(rows, key=lambda r: (r[f"val/{n}"], -r["step"]))  # the first step at the maximum
        out[f"val={n}"] = at(best, f"best validation PSNR on {n}")
    if len(val_names) > 1:
        best = max(rows, key=lambda r: (sum(r[f"val/{n}"] for n in val_names), -r["step"]))
        out["val=mean"] = at(best, f"best mean validation PSNR on {', '.join(val_names)}")
    out["last"] = at(rows[-1], "the last step")
    out["oracle"] = at(max(rows, key=lambda r: r["heldout/mean"]), "best held-out mean (context only)")
    return out


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation of two series (ties ranked by order: PSNRs to 3 decimals rarely tie)."""
    def ranks(x):
        r = [0] * len(x)
        for k, i in enumerate(sorted(range(len(x)), key=lambda i: x[i])):
            r[i] = k
        return r
    ra, rb, n = ranks(a), ranks(b), len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    return cov / (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5


def agreement(rows: list[dict], val_names: list[str], column: str = "val", target: str = "heldout/mean") -> dict:
    """How well each validation clip ranks the steps as the held-out mean does: Spearman's rho over the steps from
    a quarter of the run on (the first steps rise on every clip alike and would inflate every rho). ``column`` and
    ``target``: which validation and held-out figures (against the real clip, or ``val_teacher`` and
    ``heldout_teacher/mean``: against the teacher's decode)."""
    late = [r for r in rows if r["step"] >= rows[-1]["step"] / 4]
    held = [r[target] for r in late]
    return {"from_step": late[0]["step"], "steps": len(late),
            **{f"val={n}": round(spearman([r[f"{column}/{n}"] for r in late], held), 3) for n in val_names}}


def table(results: list[dict]) -> str:
    """The study as a markdown table: per run, held-out PSNR (dB) of the step each selection ships (and, for studies
    that scored it, the held-out mean against the teacher's decode), then each clip's rank agreement."""
    held = list(results[0]["teacher_heldout"])
    teacher = all("agreement_vs_teacher" in res for res in results)
    extra = " | mean vs teacher" if teacher else ""
    lines = [f"| decoder | selected by | step | {' | '.join(held)} | mean{extra} |",
             "|---" * (len(held) + 4 + teacher) + "|"]
    for res in results:
        name = Path(res["run"]).name
        for s in res["selections"].values():
            lines.append(f"| {name} | {s['how']} | {s['step']} | "
                         f"{' | '.join(f'{s[n]:.2f}' for n in [*held, 'mean'])} |"
                         + (f" {s['mean_vs_teacher']:.2f} |" if teacher else ""))
    lines += ["", *_agreement_table(results, "agreement", "rank correlation with the held-out mean")]
    if teacher:
        lines += ["", *_agreement_table(results, "agreement_vs_teacher",
                                        "rank correlation against the teacher's decode (validation and held-out)")]
    return "\n".join(lines)


def _agreement_table(results: list[dict], key: str, what: str) -> list[str]:
    labels = [k for k in results[0][key] if k.startswith("val=")]
    lines = ["| decoder | steps compared | " + " | ".join(f"{what}, {k}" for k in labels) + " |",
             "|---|---|" + "---|" * len(labels)]
    for res in results:
        a = res[key]
        lines.append(f"| {Path(res['run']).name} | {a['steps']} (from step {a['from_step']}) | "
                     + " | ".join(f"{v:+.2f}" for k, v in a.items() if k.startswith("val=")) + " |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", help="finished distillation run folders")
    p.add_argument("--table", default=None, metavar="JSON", help="print the markdown table of a study's JSON and exit")
    p.add_argument("--val", default="bigbuckbunny,city", help="candidate validation clips, comma-separated")
    p.add_argument("--val-sizes", default=None, metavar="N,N",
                   help="score each validation clip at these square sizes (default: the run's own val_size)")
    p.add_argument("--fp32", action="store_true",
                   help="score held-out clips with fp32 weights, as Flash-VAED students ship (default: rounded to "
                        "fp16, as lightweight decoders ship)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    if args.table:
        print(table(json.loads(Path(args.table).read_text())["runs"]))
        return 0
    if not args.runs:
        p.error("name the runs (--runs RUN ...) or a study to print (--table JSON)")
    torch.set_num_threads(1)
    sizes = [int(v) for v in args.val_sizes.split(",")] if args.val_sizes else None
    results = [study(Path(r), args.val.split(","), fp16=not args.fp32, val_sizes=sizes) for r in args.runs]
    for res in results:
        print(f"{res['run']} (teacher held-out {res['teacher_heldout']})")
        for key, s in res["selections"].items():
            figures = " / ".join(f"{v:.2f}" for k, v in s.items() if k not in ("how", "step"))
            names = " / ".join([*res["teacher_heldout"], "mean", *(["mean vs teacher"] if "mean_vs_teacher" in s
                                                                   else [])])
            print(f"  {key:>18}: step {s['step']:>5}, held-out {names} {figures} dB")
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
