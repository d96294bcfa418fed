"""python -m lab prune: build a pruned student from a teacher and save it (a diffusers folder that
load_decoder reloads)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from lab.cli.common import add_dtype_arg, device_arg, device_of, dtype_of, parse_size, positive_int
from lab.errors import ConfigError
from lab.files import check_writable

HELP = "prune a teacher into a narrower student (independence-aware by default) and save it"
log = logging.getLogger("lab")


def add_arguments(p):
    p.add_argument("--teacher", required=True, help="a registered teacher (python -m lab models) or a teacher folder")
    p.add_argument("--weights", default=None, help="override the teacher's weights (e.g. 'random')")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--keep", help="keep ratio in (0, 1] for every prunable stage, or STAGE=RATIO pairs "
                                    "(e.g. up2=0.125,up3=0.125)")
    how.add_argument("--plan", help="a named plan: 'flash-vaed' = the authors' widths (Wan up2/up3 12.5%%, LTX "
                                    "25%%) and operators")
    p.add_argument("--criterion", default="independence",
                   help="channel selection: independence (default), independence-out (weighted by the consumers' "
                        "weights), independence-jacobian (weighted by the decoder output's Jacobian), magnitude, "
                        "magnitude-l2, variance, random")
    p.add_argument("--refine", type=int, default=0, metavar="PASSES",
                   help="output-checked local search over the selection: per narrowed group, try the other "
                        "independence criteria's choices and the best single swaps, keep what lowers the student's "
                        "error against the teacher on the calibration clips (default 0 = off; 1-2 passes)")
    p.add_argument("--refine-swaps", type=int, default=0,
                   help="also try this many proxy-ranked single swaps per group and pass (default 0: choose among the "
                        "independence criteria only)")
    p.add_argument("--sensitivity-probes", type=int, default=4,
                   help="random output probes per calibration clip for independence-jacobian / --refine (default 4)")
    p.add_argument("--operators", default=None,
                   help="also swap operators: a plan name, STAGE=OP pairs, or a JSON object")
    p.add_argument("--clips", nargs="+", default=None,
                   help="calibration clips (default: every clip at hand that is not held out, read at 128x128 unless "
                        "--size: bbb-128, plus bigbuckbunny and bikes' training frames after `python -m lab data "
                        "fetch`; carphone is never among them)")
    p.add_argument("--frames", type=positive_int, default=9, help="frames per calibration clip (default 9)")
    p.add_argument("--size", type=parse_size, default=None, help="resize/crop calibration clips to HxW")
    p.add_argument("--no-fold", action="store_true", help="slice weights only (no least-squares fold)")
    p.add_argument("--ridge", type=float, default=None,
                   help="regularisation of the least-squares fold, relative to the kept channels' mean variance "
                        "(default 1e-3; 0 = plain least squares, which can blow up on nearly collinear channels)")
    p.add_argument("--fold-norms", action="store_true",
                   help="Wan: narrowed groups' RMS norms divide by the teacher's rms estimated from the kept "
                        "channels (higher PSNR before training; LTX students always do this)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random criterion")
    p.add_argument("--device", default="cpu", type=device_arg)
    add_dtype_arg(p)
    p.add_argument("--out", required=True, help="folder to save the student in (new, empty, or a decoder the lab "
                                                "saved, which is replaced)")
    p.add_argument("--overwrite", action="store_true",
                   help="save into --out even if it holds other files: the decoder's files (config.json, the "
                        "safetensors, lab_decoder.json) are written over, other files are kept")


def _operators(text: str | None):
    if not text:
        return None
    text = text.strip()
    if text.startswith("{"):
        try:
            ops = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"--operators looks like JSON but does not parse: {exc}") from None
        if not isinstance(ops, dict):
            raise ConfigError("--operators JSON must be an object of stage -> operator")
        return ops
    return text


def run(args):
    # deferred: torch, the models and the pruner load when the command runs, not for --help
    from lab.analysis.linalg import FOLD_RIDGE
    from lab.models import load_decoder
    from lab.models.interface import check_save_target
    from lab.prune import prune

    args.out = str(check_writable(args.out))  # said before the pruning; the checked path is the one written
    check_save_target(Path(args.out), args.overwrite)
    teacher = load_decoder(args.teacher, weights=args.weights, device=device_of(args.device), dtype=dtype_of(args.dtype))
    operators = _operators(args.operators)
    if args.plan:
        if args.plan not in ("flash-vaed",):
            raise ConfigError(f"unknown prune plan '{args.plan}'; plans: flash-vaed. Or give --keep RATIO.")
        keep = args.plan  # the teacher family's Flash-VAED widths (lab.arch); prune() refuses non-teachers
        operators = operators or args.plan
    else:
        keep = args.keep
    out = Path(args.out)
    student, info = prune(teacher, keep, args.criterion, clips=args.clips, frames=args.frames, size=args.size,
                          operators=operators, name=out.name, seed=args.seed, fold=not args.no_fold,
                          ridge=FOLD_RIDGE if args.ridge is None else args.ridge, fold_norms=args.fold_norms,
                          refine=args.refine, refine_swaps=args.refine_swaps,
                          sensitivity_probes=args.sensitivity_probes)
    student.save(out, overwrite=args.overwrite)
    log.info("saved %s (%d decoder params, teacher %d)", out, info["decoder_params"], info["teacher_decoder_params"])
    info.pop("transfer", None)
    return {"out": str(out), **info}


def render(r: dict) -> str:
    share = r["decoder_params"] / max(1, r["teacher_decoder_params"])
    lines = [f"saved {r['out']}: {r['decoder_params']} decoder params, {share:.1%} of {r['teacher']}'s "
             f"{r['teacher_decoder_params']} (criterion {r['criterion']})",
             "widths: " + ", ".join(f"{g}={w}" for g, w in r.get("widths", {}).items())]
    cal = r.get("calibration")
    if cal and isinstance(cal.get("clips"), list):
        lines.append(f"calibrated on {', '.join(cal['clips'])}" + (" (the default clips)" if cal.get("default") else ""))
    if r.get("operators"):
        lines.append(f"operators: {r['operators']}")
    return "\n".join(lines)
