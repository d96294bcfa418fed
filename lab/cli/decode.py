"""python -m lab decode: decode a latents file (or a clip through its teacher's encoder) to mp4."""

import logging
import time
from pathlib import Path

from lab.cli.common import add_decoder_args, add_device_args, device_of, dtype_of, fps_arg, positive_int
from lab.errors import ConfigError, LatentShapeError
from lab.files import check_writable

HELP = "decode latents (a .pth/.safetensors file) or a round trip of a clip, and write an mp4"
log = logging.getLogger("lab")


def add_arguments(p):
    add_decoder_args(p, decoding=True)
    add_device_args(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--latents", help="a latents file, NCTHW, normalized as the diffusion model produces them")
    src.add_argument("--video", help="a clip: encode it (with the decoder's own encoder, or a student's teacher's), "
                                     "then decode")
    p.add_argument("--teacher", default=None,
                   help="with --video: the VAE whose encoder makes the latents (default: the decoder itself for a "
                        "teacher, the teacher it records for a student)")
    p.add_argument("--teacher-weights", default=None, help="override the teacher's weights (as --weights)")
    p.add_argument("--frames", type=positive_int, default=17, help="frames to read from --video (default 17)")
    p.add_argument("--out", help="write the decoded video here (mp4)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--stream", action="store_true", help="decode one latent frame at a time (causal decoders)")
    p.add_argument("--fps", type=fps_arg, default=16.0, help="frame rate of the written mp4 (default 16)")


def run(args):
    # deferred: torch and the models load when the command runs, not for --help
    import torch

    from lab.data.latents import load_latents
    from lab.data.samples import resolve_clip
    from lab.data.video import load_clip, write_video
    from lab.models import load_for_decoding
    from lab.models.pairing import latents_encoder
    from lab.runtime.spec import fixed_spec

    device, dtype = device_of(args.device), dtype_of(args.dtype)
    if args.out:  # a read-only folder, a name too long or a folder given: said before the decode, not after it
        args.out = str(check_writable(args.out))  # the checked (expanded) path is the one written
        if Path(args.out).is_dir():
            raise ConfigError(f"--out {args.out} is a folder; give a file name, e.g. "
                              f"--out {Path(args.out) / 'decoded.mp4'}")
        if Path(args.out).expanduser().exists() and not args.overwrite:  # a user's file is never replaced unasked
            raise ConfigError(f"--out {args.out} exists; choose another name, or pass --overwrite to replace it.")
    if args.latents and (args.teacher or args.teacher_weights):
        raise ConfigError("--teacher makes latents from --video; with --latents there is nothing to encode (drop it)")
    dec = load_for_decoding(args.decoder, weights=args.weights, device=device, dtype=dtype)
    encoder = None
    if args.latents:
        z = _floating(load_latents(args.latents), args.latents).to(device=device, dtype=dtype)
    else:
        encoder = latents_encoder(dec, args.teacher, spec=args.decoder, weights=args.weights,
                                  teacher_weights=args.teacher_weights, device=device, dtype=dtype)
        if encoder is not dec:
            log.info("decode: %s encodes the clip, %s decodes it", encoder.name, dec.name)
        g = encoder.geometry
        video = load_clip(resolve_clip(args.video), frames=args.frames, frame_multiple=g.t, spatial_multiple=g.spatial)
        z = encoder.encode(video.to(device=device, dtype=dtype))
    t0 = time.perf_counter()
    if args.stream:
        out = torch.cat(list(dec.decode_stream(z)), dim=2)
    else:
        out = dec.decode(z)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    # the name with its runtime (mini-wan-flash@fused): which path made the decode
    result = {"decoder": fixed_spec(dec.name, dec), "latents_shape": list(z.shape), "video_shape": list(out.shape),
              "seconds": seconds, "fps": out.shape[2] / seconds}
    if encoder is not None:
        result["encoded_by"] = encoder.name
    if args.out:
        result["out"] = str(write_video(args.out, out.float(), fps=args.fps))
    return result


def render(r: dict) -> str:
    text = (f"{r['decoder']}: latents {'x'.join(map(str, r['latents_shape']))} -> video "
            f"{'x'.join(map(str, r['video_shape']))} in {r['seconds']:.3f} s ({r['fps']:.1f} frames/s)")
    return text + (f"\nwrote {r['out']}" if r.get("out") else "")


def _floating(z, path: str):
    # The cast to the decoder's dtype would turn int, bool or complex latents into plausible-looking
    # floats (dropping the imaginary part): refuse them while their dtype still says what they are.
    if not z.is_floating_point():
        raise LatentShapeError(f"{path} holds {z.dtype} latents; latents are real floating point tensors "
                               f"(float32, bf16 or fp16) as the diffusion model produces them. Save those instead.")
    return z
