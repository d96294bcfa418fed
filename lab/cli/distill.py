"""python -m lab distill --config FILE --out RUN [--resume]: three-phase distillation of a student
decoder from its frozen teacher (lab.distill). Works the same under torchrun (DDP)."""

from __future__ import annotations

import os
from pathlib import Path

from lab.cli.common import add_downloads_arg, apply_downloads_arg
from lab.errors import ConfigError
from lab.runs.store import STORE_FILE

HELP = "distill a student decoder from its teacher (three phases, resumable, torchrun-ready)"


def add_arguments(p):
    p.add_argument("--config", default=None,
                   help="run config (.toml/.yaml/.json; see configs/distill/). Optional with --resume "
                        "(the run's own config.json is used)")
    p.add_argument("--out", required=True, help="run folder (store.sqlite, checkpoints/, best/, last/, samples/)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its newest readable checkpoint (refused while another "
                        "process writes it)")
    p.add_argument("--overwrite", action="store_true",
                   help="start the run even if --out holds other files or an earlier run: the run's own files "
                        "there (store.sqlite, config.json, checkpoints/, samples/, best/, last/, init/) are "
                        "replaced, other files are kept")
    add_downloads_arg(p)


def run(args):
    # deferred: the trainer loads when the command runs, not when build_parser imports every command
    from lab.distill import distill
    _check_writable(Path(args.out))
    apply_downloads_arg(args)
    return distill(args.config, args.out, resume=args.resume, overwrite=args.overwrite)


def _check_writable(out: Path) -> None:
    """A run folder this process can write, said in one line here rather than in a traceback from sqlite."""
    existing = next(p for p in (out, *out.parents) if p.exists())  # the folder that will be written in
    blocked = [p for p in (existing, out / STORE_FILE) if p.exists() and not os.access(p, os.W_OK)]
    if blocked:
        raise ConfigError(f"{blocked[0]} is not writable; copy the run to a writable folder (or fix the "
                          f"permissions) and pass that as --out.")


def render(result: dict) -> str:
    best = result.get("best_val_psnr")
    # A run that never evaluated has no best PSNR yet; say so rather than fail to format None.
    best_text = (f"best val PSNR {best:.2f} dB at step {result.get('best_step')}"
                 if isinstance(best, (int, float)) else "no validation PSNR yet")
    lines = [f"run {result['out']}: {result['step']} steps; {best_text} ({result.get('best')})"]
    m = result.get("metrics") or {}
    if m:
        lines.append("final: " + ", ".join(f"{k}={_num(v)}" for k, v in sorted(m.items())))
    for p in result.get("phases", []):
        lines.append(f"  phase {p['name']}: steps {p['start']}..{p['end']} (started: {p.get('started_because')}; "
                     f"ended: {p.get('ended_because') or 'run end'})")
    lines += [f"warning: {w}" for w in result.get("warnings") or []]
    return "\n".join(lines)


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, (int, float)) else str(v)
