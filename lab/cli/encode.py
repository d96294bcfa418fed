"""python -m lab encode: a clip's latents from a teacher's encoder, written as a file that
``python -m lab decode --latents`` (and torch.load(path, weights_only=True)) reads."""

import logging

from lab.cli.common import add_device_args, device_of, dtype_of, parse_size, positive_int
from lab.errors import ConfigError, LabError
from lab.files import check_writable

HELP = "encode a clip with a teacher's encoder and write its latents (.pth or .safetensors) for decode --latents"
log = logging.getLogger("lab")


def add_arguments(p):
    p.add_argument("--teacher", required=True,
                   help="a VAE with an encoder: a registered teacher (python -m lab models) or its folder")
    p.add_argument("--weights", default=None, help="override the teacher's weights (e.g. 'random')")
    add_device_args(p)
    p.add_argument("--video", required=True, help="a clip: a path, or a bundled / sample clip name (e.g. bbb-128)")
    p.add_argument("--frames", type=positive_int, default=17,
                   help="frames to read, fitted to the VAE (1 + 4k for Wan, 1 + 8k for LTX; default 17)")
    p.add_argument("--size", type=parse_size, default=None,
                   help="HxW to resize/center-crop to (default: the clip's size cropped to the VAE grid)")
    p.add_argument("--out", required=True,
                   help="latents file: .pth (a plain tensor: torch.load(path, weights_only=True)) or .safetensors "
                        "(one tensor, 'latents'); NCTHW, normalized as the diffusion model produces them")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def run(args):
    out = check_writable(args.out)  # before the encode, not after it
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name, e.g. --out {out / 'z.pth'}")
    if out.suffix not in (".pt", ".pth", ".safetensors"):
        raise ConfigError(f"--out {out}: latents are written as .pth (a plain tensor) or .safetensors; name the file "
                          f"{out.with_suffix('.pth').name} or {out.with_suffix('.safetensors').name}.")
    if out.exists() and not args.overwrite:  # a user's file is never replaced unasked
        raise ConfigError(f"--out {out} exists; choose another name, or pass --overwrite to replace it.")
    # deferred: torch and the models load when the command runs, not for --help
    import torch

    from lab.data.latents import save_latents
    from lab.data.samples import resolve_clip
    from lab.data.video import load_clip
    from lab.models import load_decoder

    device, dtype = device_of(args.device), dtype_of(args.dtype)
    vae = load_decoder(args.teacher, weights=args.weights, device=device, dtype=dtype)
    if not vae.has_encoder:
        raise LabError(f"{vae.name} has no encoder; encode with its teacher (e.g. --teacher "
                       f"{getattr(vae, 'teacher_name', None) or 'mini-wan'}).")
    g = vae.geometry
    video = load_clip(resolve_clip(args.video), frames=args.frames, size=args.size, frame_multiple=g.t,
                      spatial_multiple=g.spatial)
    with torch.no_grad():
        z = vae.encode(video.to(device=device, dtype=dtype))
    save_latents(out, z)
    log.info("encode: %s -> %s with %s's encoder", args.video, out, vae.name)
    return {"teacher": vae.name, "video": str(args.video), "video_shape": list(video.shape),
            "latents_shape": list(z.shape), "dtype": str(z.dtype).replace("torch.", ""), "out": str(out)}


def render(r: dict) -> str:
    return (f"{r['teacher']}: video {'x'.join(map(str, r['video_shape']))} -> latents "
            f"{'x'.join(map(str, r['latents_shape']))} ({r['dtype']}), wrote {r['out']}\n"
            f"decode them: python -m lab decode --decoder {r['teacher']} --latents {r['out']} --out video.mp4")
