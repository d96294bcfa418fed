"""python -m lab distill --config FILE --out RUN [--resume | --restart] [--device D]: three-phase distillation of
a student decoder from its frozen teacher (lab.distill). Works the same under torchrun (DDP)."""

from __future__ import annotations

import os
from pathlib import Path

from lab.cli.common import add_downloads_arg, apply_downloads_arg, device_arg
from lab.errors import ConfigError
from lab.files import check_writable, disk_full_error, is_disk_full
from lab.runs.store import STORE_FILE, is_run

HELP = "distill a student decoder from its teacher (three phases, resumable, torchrun-ready)"


def add_arguments(p):
    p.add_argument("--config", default=None,
                   help="run config (.toml/.yaml/.json; see configs/distill/). Optional with --resume "
                        "(the run's own config.json is used)")
    p.add_argument("--out", required=True, help="run folder (store.sqlite, checkpoints/, best/, last/, samples/)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its newest readable checkpoint (refused while another "
                        "process writes it)")
    p.add_argument("--restart", action="store_true",
                   help="start the run in --out over from step 0, with its own config (or --config): for a run none "
                        "of whose checkpoints can be read any more (one that can still resume also needs "
                        "--overwrite); its store, checkpoints and students are replaced")
    p.add_argument("--device", type=device_arg, default=None,
                   help="cpu, cuda or cuda:N: overrides the config's device (default: the config's, cpu if unset)")
    p.add_argument("--overwrite", action="store_true",
                   help="start the run even if --out holds other files or an earlier run: the run's own files "
                        "there (store.sqlite, config.json, checkpoints/, samples/, best/, last/, init/) are "
                        "replaced, other files are kept")
    add_downloads_arg(p)


def run(args):
    # deferred: torch and the trainer load when the command runs, not for --help
    from lab.distill import distill, load_config
    from lab.training.run_folder import run_config

    out = Path(args.out).expanduser()  # the path check_writable checks is the one written
    if args.restart and args.resume:
        raise ConfigError("--resume continues a run and --restart starts it over; pass one of them.")
    if args.restart and not is_run(out):
        raise ConfigError(f"--restart starts an existing run over, and {out} holds none; start a new run with "
                          f"--config FILE --out {out}.")
    if args.restart and not args.overwrite:
        _refuse_restart_of_a_resumable_run(out)
    _check_writable(out)  # a run's folder and store writable (for --resume), said as a run's
    check_writable(out)  # any other path: a name too long, a read-only folder; before the work
    apply_downloads_arg(args)
    config = args.config
    if args.restart and config is None:
        config = run_config(out)
    if args.device is not None:  # the flag overrides the config's device (a resume included)
        if config is None and not args.resume:
            raise ConfigError(f"distill needs --config FILE for a new run in {out} (--resume continues a run with "
                              f"its own config).")
        config = load_config(config if config is not None else run_config(out))
        config.device = args.device
    try:
        return distill(config, out, resume=args.resume, overwrite=args.overwrite or args.restart)
    except Exception as exc:
        if is_disk_full(exc):
            raise disk_full_error(out, f"continue the run with: python -m lab distill --out {out} --resume", exc) \
                from None
        raise


def _refuse_restart_of_a_resumable_run(out: Path) -> None:
    """--restart is for a run none of whose checkpoints can be read: one that can still resume would lose its
    steps to a mistyped flag, so it takes --overwrite as well (said, with the step it would throw away)."""
    from lab.distill.trainer import DistillTask
    from lab.training.checkpoints import CheckpointFolder, checkpoint_step

    newest = CheckpointFolder(out, DistillTask.state_keys, DistillTask.weights_prefix).pick("cpu", set_aside=False)
    if newest is not None:
        raise ConfigError(f"--restart would discard {out}, which resumes from its checkpoint at step "
                          f"{checkpoint_step(newest[0])}: continue it with python -m lab distill --out {out} --resume, "
                          f"or pass --restart --overwrite to start it over from step 0.")


def _check_writable(out: Path) -> None:
    """A run folder this process can write, said in one line here rather than in a traceback from sqlite."""
    try:
        existing = next(p for p in (out, *out.parents) if p.exists())  # the folder that will be written in
        blocked = [p for p in (existing, out / STORE_FILE) if p.exists() and not os.access(p, os.W_OK)]
    except OSError:  # a name too long for the file system: check_writable says so
        return
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
