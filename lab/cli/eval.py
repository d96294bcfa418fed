"""python -m lab eval: a decoder's reconstruction metrics on a real clip (latents from the teacher's encoder)."""

from lab.cli import table
from lab.cli.common import (DTYPES, add_decoder_args, add_device_args, add_downloads_arg, apply_downloads_arg,
                            device_of, parse_size, positive_int)
from lab.eval.evaluate import METRICS, evaluate, parse_metrics

HELP = "score a decoder's reconstruction of a real clip (PSNR, SSIM, VMAF, ...), and a student against its teacher"


def add_arguments(p):
    add_decoder_args(p)
    add_device_args(p)
    p.add_argument("--teacher", default=None,
                   help="the VAE whose encoder makes the latents (default: the decoder itself for a teacher, "
                        "its teacher_name for a student)")
    p.add_argument("--teacher-weights", default=None, help="override the teacher's weights (as --weights)")
    p.add_argument("--video", required=True, help="a clip: a path, or a bundled / sample clip name")
    p.add_argument("--frames", type=positive_int, default=17, help="frames to read (fitted to the VAE, default 17)")
    p.add_argument("--size", type=parse_size, default=None,
                   help="HxW to resize/center-crop to (default: the clip's size cropped to the VAE grid)")
    p.add_argument("--metrics", default=None,
                   help=f"comma-separated, from {','.join(METRICS)} (default psnr,ssim,vmaf,temporal; "
                        f"lpips, fid and video_fid need backbone weights)")
    add_downloads_arg(p)


def run(args):
    apply_downloads_arg(args)
    return evaluate(args.decoder, args.video, teacher=args.teacher, weights=args.weights,
                    teacher_weights=args.teacher_weights, frames=args.frames, size=args.size,
                    metrics=parse_metrics(args.metrics), device=device_of(args.device), dtype=DTYPES[args.dtype])


def render(result) -> str:
    names = result["metrics"]
    rows = [{"compare": f"{result['decoder']} vs clip", **{m: result[m] for m in names}}]
    if "vs_teacher" in result:
        rows.append({"compare": f"{result['teacher']} vs clip", **result["teacher_vs_clip"]})
        rows.append({"compare": f"{result['decoder']} vs {result['teacher']}", **result["vs_teacher"]})
    text = table(rows, ["compare", *names])
    if "retention" in result:
        text += f"\nretention (PSNR {result['decoder']} / {result['teacher']}): {result['retention']:.4f}"
    return text
