"""python -m lab eval: a decoder's reconstruction metrics on a real clip (latents from the teacher's encoder)."""

from lab.cli import table
from lab.cli.common import (add_decoder_args, add_device_args, add_downloads_arg, apply_downloads_arg, device_of,
                            dtype_of, parse_size, positive_int)

HELP = "score a decoder's reconstruction of a real clip (PSNR, SSIM, VMAF, ...), and a student against its teacher"


def add_arguments(p):
    add_decoder_args(p, decoding=True)
    add_device_args(p)
    p.add_argument("--teacher", default=None,
                   help="the VAE whose encoder makes the latents (default: the decoder itself for a teacher, "
                        "its teacher_name for a student)")
    p.add_argument("--teacher-weights", default=None, help="override the teacher's weights (as --weights)")
    p.add_argument("--video", required=True, help="a clip: a path, or a bundled / sample clip name")
    p.add_argument("--frames", type=positive_int, default=17, help="frames to read (fitted to the VAE, default 17)")
    p.add_argument("--size", type=parse_size, default=None,
                   help="HxW to resize/center-crop to (default: the clip's size cropped to the VAE grid)")
    # The names are lab.eval.evaluate.METRICS, checked in run(): importing it here would load torch for --help
    # (tests/cli/test_cli_help.py keeps this text in step with it).
    p.add_argument("--metrics", default=None,
                   help="comma-separated, from psnr,ssim,vmaf,temporal,lpips,fid,video_fid (default "
                        "psnr,ssim,vmaf,temporal; lpips, fid and video_fid need backbone weights)")
    add_downloads_arg(p)


def run(args):
    from lab.eval.evaluate import evaluate, parse_metrics  # deferred: torch loads when the command runs, not for --help

    apply_downloads_arg(args)
    return evaluate(args.decoder, args.video, teacher=args.teacher, weights=args.weights,
                    teacher_weights=args.teacher_weights, frames=args.frames, size=args.size,
                    metrics=parse_metrics(args.metrics), device=device_of(args.device), dtype=dtype_of(args.dtype))


def render(result) -> str:
    from lab.eval.evaluate import metric_label, retention_text  # deferred: as in run()

    names = result["metrics"]
    heads = {m: metric_label(m) for m in names}  # each column says its unit and which way is better
    rows = [{"compare": f"{result['decoder']} vs clip", **{heads[m]: result[m] for m in names}}]
    if "vs_teacher" in result:
        rows.append({"compare": f"{result['teacher']} vs clip", **{heads[m]: result["teacher_vs_clip"][m] for m in names}})
        rows.append({"compare": f"{result['decoder']} vs {result['teacher']}",
                     **{heads[m]: result["vs_teacher"][m] for m in names}})
    text = table(rows, ["compare", *heads.values()])
    by_frame = [(r["compare"], m["psnr_by_latent_frame"]) for r, m in
                zip(rows, [result, result.get("teacher_vs_clip"), result.get("vs_teacher")])
                if m and "psnr_by_latent_frame" in m]
    if by_frame:  # where along the clip the PSNR is: a decode can match early and drift later
        text += "\nPSNR dB by latent frame (0, 1, ...):" + "".join(
            f"\n  {what}: {' '.join(f'{v:.1f}' for v in curve)}" for what, curve in by_frame)
    if "retention" in result:
        text += f"\nretention (PSNR {result['decoder']} / {result['teacher']}): {retention_text(result)}"
    if result.get("vmaf_note"):
        text += f"\n{result['vmaf_note']}"
    return text
