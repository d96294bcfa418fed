"""python -m lab ship: copy a finished distillation run's student (a Flash-VAED student or a lightweight
decoder) into data/checkpoints/NAME with a model card written from the run and a held-out evaluation."""

import torch

HELP = "ship a finished distillation run's decoder to data/checkpoints with its model card"


def add_arguments(p):
    p.add_argument("--run", required=True, help="a finished `python -m lab distill` run folder")
    p.add_argument("--config", required=True, help="the config file the run was started with (for the card)")
    p.add_argument("--name", default=None, help="decoder name (default: the run folder's name)")
    p.add_argument("--dest", default=None, help="output folder (default data/checkpoints/NAME)")
    p.add_argument("--weights", choices=["last", "best"], default="last",
                   help="the run's last step (default) or its best validation step")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights (default: fp16 for lightweight decoders)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")


def run(args):
    from lab.ship import ship  # deferred: loaded when the command runs, not when build_parser imports every command
    torch.set_num_threads(args.threads)
    return ship(args.run, args.config, args.name, args.dest, fp16=False if args.fp32 else None, which=args.weights)


def render(result):
    lines = [f"shipped {result['name']} (step {result['step']}, {result['weights_bytes'] / 1e6:.2f} MB of weights) "
             f"to {result['folder']}; card: {result['folder']}/README.md"]
    for clip, s in result["heldout"].items():
        lines.append(f"  held-out {clip}: {s['psnr']:.2f} dB PSNR (teacher {s['teacher_psnr']:.2f} dB)")
    return "\n".join(lines)
