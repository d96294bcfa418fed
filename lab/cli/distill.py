"""python -m lab distill --config FILE --out RUN [--resume]: three-phase distillation of a student
decoder from its frozen teacher (lab.distill). Works the same under torchrun (DDP)."""

from __future__ import annotations

HELP = "distill a student decoder from its teacher (three phases, resumable, torchrun-ready)"


def add_arguments(p):
    p.add_argument("--config", default=None,
                   help="run config (.toml/.yaml/.json; see configs/distill/). Optional with --resume "
                        "(the run's own config.json is used)")
    p.add_argument("--out", required=True, help="run folder (store.sqlite, checkpoints/, best/, last/, samples/)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")


def run(args):
    from lab.distill import distill
    return distill(args.config, args.out, resume=args.resume)


def render(result: dict) -> str:
    m = result.get("metrics") or {}
    lines = [f"run {result['out']}: {result['step']} steps; best val PSNR {result['best_val_psnr']:.2f} dB "
             f"at step {result['best_step']} ({result['best']})"]
    if m:
        lines.append("final: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(m.items())))
    for p in result.get("phases", []):
        lines.append(f"  phase {p['name']}: steps {p['start']}..{p['end']} ({p['reason']})")
    return "\n".join(lines)
