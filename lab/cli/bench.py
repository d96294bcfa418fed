"""python -m lab bench: decode latency, throughput, memory, size and MACs of several decoders, in one process."""

from lab.cli import table
from lab.cli.common import add_dtype_arg, device_arg, parse_size, positive_int
from lab.errors import LabError

HELP = "benchmark decoders on random latents: median seconds, fps, peak memory, params, MACs, speedup vs the first"


def add_arguments(p):
    p.add_argument("--decoders", required=True,
                   help="comma-separated decoder names or folders; D1 is the baseline. NAME@chunkK runs a Wan-family "
                        "decoder K latent frames per call, NAME@fast picks K by timing, NAME@fused runs the lab's fused "
                        "kernels (+graphs: CUDA graphs of its steady steps; +subpixel: upsample + conv as one "
                        "sub-pixel conv), NAME@compile[-MODE|-auto] runs it under torch.compile, '+' joins them "
                        "(lab.runtime); with the plain NAME in the list too, "
                        "its max_abs_err and psnr against it are reported")
    p.add_argument("--weights", default=None,
                   help="override the weights of every registered decoder (e.g. 'random' for full-size models)")
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N (default cpu)")
    add_dtype_arg(p)
    p.add_argument("--frames", type=positive_int, default=17, help="output frames (1 + t*k for the decoders' geometry)")
    p.add_argument("--size", type=parse_size, default=(256, 256), help="output HxW (default 256x256)")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed decodes per decoder (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed decodes per decoder first")
    # The modes are lab.runtime.compiled.MODES, checked in run(): importing that module here would load torch
    # for --help (tests/cli/test_cli_help.py keeps this text in step with it).
    p.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE",
                   help="torch.compile every decoder with this mode: default (if MODE is not given), "
                        "reduce-overhead, max-autotune-no-cudagraphs or max-autotune (compiled in a first, untimed "
                        "decode; CUDA-graph modes are refused for causal decoders)")
    p.add_argument("--compile-candidates", default=None, metavar="MODES",
                   help="comma-separated modes that NAME@compile-auto tries besides eager (if not given: "
                        "default; each more mode compiles every chunk shape again)")
    p.add_argument("--reference", default=None, choices=["fp32"],
                   help="also decode with each plain decoder in float32 (loaded once more, then freed) and report "
                        "psnr_vs_fp32 and max_abs_err_vs_fp32 per row")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--no-macs", action="store_true", help="skip the MAC count (one extra decode per decoder)")


def run(args):
    # deferred: torch and the decoders load when the command runs, not for --help
    from lab.devices import check_device
    from lab.eval.bench import bench
    from lab.runtime.compiled import MODES

    check_device(args.device)  # before any model is loaded; says which torch build is missing CUDA
    if args.compile and args.compile not in MODES:
        raise LabError(f"--compile: unknown mode '{args.compile}'; choose among {', '.join(MODES)}")
    names = [n.strip() for n in args.decoders.split(",") if n.strip()]
    candidates = None
    if args.compile_candidates:
        candidates = tuple(m.strip() for m in args.compile_candidates.split(",") if m.strip())
        unknown = [m for m in candidates if m not in MODES]
        if unknown:
            raise LabError(f"--compile-candidates: unknown mode(s) {', '.join(unknown)}; choose among "
                           f"{', '.join(MODES)} (eager is always timed)")
    return bench(names, weights=args.weights, device=args.device, dtype=args.dtype, frames=args.frames,
                 size=args.size, repeats=args.repeats, warmup=args.warmup, compile=args.compile or False,
                 memory=not args.no_memory, macs=not args.no_macs, reference=args.reference,
                 compile_candidates=candidates)


def render(result) -> str:
    cols = ["decoder", "chunk", "compile_mode", "seconds", "fps", "speedup", "max_abs_err", "psnr", "psnr_vs_fp32",
            "decoder_params", "weights_bytes", "macs", "decode_mem_bytes", "peak_mem_bytes"]
    head = (f"{result['device']} {result['dtype']}, {result['frames']} frames at {result['size'][0]}x"
            f"{result['size'][1]}, median of {result['repeats']} after {result['warmup']} warm-up")
    notes = [f"{r['decoder']}: {r['note']}" for r in result["decoders"] if r.get("note")]
    notes += [f"{r['decoder']}: failed: {r['error']}" for r in result["decoders"] if r.get("error")]
    return "\n".join([head, table(result["decoders"], [c for c in cols if any(c in r for r in result["decoders"])]),
                      *notes])
