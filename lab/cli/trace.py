"""python -m lab trace: a shape-only trace of decoders at full size on the meta device (ops, bytes, MACs)."""

from lab.cli import table
from lab.cli.common import parse_size, positive_int

HELP = "trace decoders on the meta device (no compute): aten ops per latent frame, bytes moved, MACs, by op and stage"
DESCRIPTION = (HELP + ". Every non-view aten op of one decode is counted with its input and output bytes; a fused "
               "kernel (NAME@fused) is one op with its own reads and writes. What a GPU profile should confirm, on "
               "any CPU in seconds (lab.eval.trace).")


def add_arguments(p):
    p.add_argument("--decoders", required=True,
                   help="comma-separated decoder names or folders with fixed runtimes as in lab bench: NAME@chunkK, "
                        "NAME@fused, NAME@fused+subpixel, '+' joins them (e.g. wan2.1,wan2.1@fused,"
                        "wan2.1-flash@fused+chunk4)")
    p.add_argument("--weights", default="random",
                   help="weights of registered decoders (default random: on the meta device no weights are read)")
    p.add_argument("--frames", type=positive_int, default=81, help="output frames (default 81)")
    p.add_argument("--size", type=parse_size, default=(480, 832), help="output HxW (default 480x832)")
    p.add_argument("--dtype", default="bf16", choices=["fp32", "bf16", "fp16"], help="dtype traced (default bf16)")
    p.add_argument("--top", type=positive_int, default=12, help="ops listed by bytes per decoder (default 12)")


def run(args):
    from lab.eval.trace import trace  # deferred: torch and the models load only when a command runs
    names = [n.strip() for n in args.decoders.split(",") if n.strip()]
    return trace(names, weights=args.weights, frames=args.frames, size=args.size, dtype=args.dtype, top=args.top)


def render(result) -> str:
    rows = [{"decoder": d["label"], "aten_ops": d["aten_ops"], "ops/latent frame": d["ops_per_latent_frame"],
             "GB moved": round(d["bytes_moved"] / 1e9, 1), "TMACs": round(d["macs"] / 1e12, 3),
             "no-cuDNN depthwise": d["native_depthwise3d_convs"]}
            for d in result["decoders"]]
    lines = [f"{result['frames']} frames at {result['size'][0]}x{result['size'][1]}, {result['dtype']}, meta device "
             f"(shapes only)", table(rows, list(rows[0]))]
    for d in result["decoders"]:
        lines.append(f"\n{d['label']}: GB by stage " + ", ".join(
            f"{k} {v['bytes'] / 1e9:.1f}" for k, v in d["by_stage"].items()))
        lines.append("  top ops by bytes: " + ", ".join(
            f"{k} {v['bytes'] / 1e9:.1f} GB ({v['ops']})" for k, v in d["by_op"].items()))
    if any(d["native_depthwise3d_convs"] for d in result["decoders"]):
        lines.append("\nno-cuDNN depthwise: depthwise 3D convs on NCDHW tensors, which CUDA runs with ATen's slow "
                     "conv_depthwise3d kernel (cuDNN takes depthwise convs in channels-last only)")
    return "\n".join(lines)
