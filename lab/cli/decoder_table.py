"""python -m lab table: decoders of one latent space side by side on the held-out real clips
(PSNR, SSIM, VMAF, params, time per 8 frames), optionally written as a markdown report."""

import shlex

from lab.cli import table as text_table
from lab.cli.common import add_device_args, device_of, dtype_of, positive_int, threads_arg

HELP = ("compare decoders on a teacher's latents of the held-out real clips: PSNR, SSIM, VMAF, params and "
        "time per 8 frames, measured side by side in one process")


def add_arguments(p):
    p.add_argument("--decoders", required=True,
                   help="comma-separated registered names or saved folders (the teacher's own name: its decoder); "
                        "NAME@chunkK times a Wan-family decoder with K latent frames per call (lab.runtime)")
    p.add_argument("--teacher", default="mini-wan", help="the VAE whose encoder makes the latents (default mini-wan)")
    p.add_argument("--clips", default=None,
                   help="held-out clips, comma-separated (default all: carphone, bikes-heldout)")
    p.add_argument("--frames", type=positive_int, default=17, help="frames per held-out clip (default 17)")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed decodes per decoder, interleaved (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed decodes per decoder first (default 1)")
    p.add_argument("--threads", type=threads_arg, default=1,
                   help="torch threads (default 1, as the timings in the report; 0: torch's choice)")
    p.add_argument("--no-vmaf", action="store_true", help="skip VMAF (it needs ffmpeg with libvmaf)")
    # const True: the path is lab.eval.table.DEFAULT_REPORT, read in run() (importing it here would load torch
    # for --help; tests/cli/test_cli_help.py keeps this text in step with it).
    p.add_argument("--report", nargs="?", const=True, default=None,
                   help="also write the markdown report (default path docs/results/lightweight-mini-wan.md)")
    add_device_args(p)


def run(args):
    # deferred: torch and the decoders load when the command runs, not for --help
    import torch

    from lab.eval.table import DEFAULT_REPORT, decoder_table, write_report

    if args.report is True:
        args.report = DEFAULT_REPORT
    if args.threads:
        torch.set_num_threads(args.threads)
    result = decoder_table([d.strip() for d in args.decoders.split(",") if d.strip()], teacher=args.teacher,
                           clips=[c.strip() for c in args.clips.split(",")] if args.clips else None,
                           frames=args.frames, vmaf=not args.no_vmaf, repeats=args.repeats, warmup=args.warmup,
                           device=device_of(args.device), dtype=dtype_of(args.dtype))
    if args.report:
        command = "python -m lab table " + " ".join(
            shlex.quote(a) for a in _argv_of(args))
        result["report"] = str(write_report(result, args.report, command))
    return result


def _argv_of(args) -> list[str]:
    """The options that shaped the result, as a command line (written into the report)."""
    out = ["--decoders", args.decoders, "--teacher", args.teacher, "--frames", str(args.frames),
           "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    if args.clips:
        out += ["--clips", args.clips]
    if args.no_vmaf:
        out.append("--no-vmaf")
    if args.device != "cpu" or args.dtype != "fp32":
        out += ["--device", args.device, "--dtype", args.dtype]
    return out + ["--report", args.report]


def render(result) -> str:
    rows = []
    for r in result["rows"]:
        row = {"decoder": r["decoder"], "params": f"{r['decoder_params'] / 1e6:.2f}M"}
        for clip, m in r["clips"].items():
            row[f"{clip} psnr"] = round(m["psnr"], 2)
            row[f"{clip} ssim"] = round(m["ssim"], 4)
            row[f"{clip} vmaf"] = "n/a" if m["vmaf"] is None else round(m["vmaf"], 1)
        row["ms/8 frames"] = round(r["seconds_per_8_frames"] * 1e3, 1)
        rows.append(row)
    text = text_table(rows, list(rows[0]))
    if result.get("vmaf_note"):
        text += f"\n{result['vmaf_note']}"
    if result.get("report"):
        text += f"\nreport: {result['report']}"
    return text
