"""python -m lab ship: every model the lab ships goes to data/checkpoints/NAME with its provenance record and
model card (lab.cards), written from the run and a held-out evaluation: a finished distillation run's student (a Flash-VAED student or
a lightweight decoder), or a teacher run's last checkpoint (exported as `python -m lab teacher export` does)."""

from lab.cli.common import threads_arg
from lab.files import check_writable

HELP = "ship a distillation run's decoder or a teacher run to data/checkpoints with its model card"


def add_arguments(p):
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--run", default=None,
                      help="a finished `python -m lab distill` run folder, or a `python -m lab teacher train` run folder")
    what.add_argument("--rerender", nargs="+", metavar="NAME", default=None,
                      help="write the README.md card of these shipped models (names under data/checkpoints, folders, "
                           "or 'all') again from their provenance.json, after a change to the card code; nothing "
                           "else is written")
    what.add_argument("--rescore", nargs="+", metavar="NAME", default=None,
                      help="measure these shipped students' held-out tables again (names, folders or 'all' students) "
                           "after their teacher was shipped again, and write their records and cards; weights stay")
    p.add_argument("--config", default=None,
                   help="the config file a distillation run was started with (for the card; required for one)")
    p.add_argument("--name", default=None,
                   help="decoder name (default: the run folder's name; a teacher's is its model's name)")
    p.add_argument("--dest", default=None, help="output folder (default data/checkpoints/NAME)")
    p.add_argument("--weights", choices=["last", "best"], default=None,
                   help="the run's last step (default) or its best validation step")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights (default: fp16 for lightweight decoders)")
    p.add_argument("--threads", type=threads_arg, default=1,
                   help="torch CPU threads (default 1; 0: torch's choice; at most this machine's CPU count)")


def run(args):
    # deferred: torch and the shipper load when the command runs, not for --help
    import torch

    from lab.errors import LabError
    from lab.ship import rerender, rescore, ship, shipped_folders
    if args.rerender or args.rescore:
        flag = "--rerender only renders cards" if args.rerender else "--rescore only measures shipped models again"
        given = [opt for opt in ("config", "name", "dest", "weights") if getattr(args, opt) is not None]
        given += ["fp32"] if args.fp32 else []
        if given:
            raise LabError(f"{flag} from their records; drop --{', --'.join(given)}")
    if args.rerender:
        return {"rerendered": [rerender(f) for f in shipped_folders(args.rerender)]}
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rescore:  # 'all': every student; a teacher's own scores do not depend on another model
        return {"rescored": [rescore(f) for f in shipped_folders(args.rescore, kind="student")]}
    if args.dest:
        args.dest = str(check_writable(args.dest, "--dest"))
    return ship(args.run, args.config, args.name, args.dest, fp16=False if args.fp32 else None,
                which=args.weights or "last")


def render(result):
    if "rescored" in result:
        lines = []
        for r in result["rescored"]:
            lines.append(f"{r['folder']}: held-out table measured again; record and card written")
            for clip, s in r["heldout"].items():
                was = r["before"].get(clip, {})
                lines.append(f"  {clip}: {s['psnr']:.2f} dB (was {was.get('psnr', float('nan')):.2f}), teacher "
                             f"{s['teacher_psnr']:.2f} dB (was {was.get('teacher_psnr', float('nan')):.2f})")
        return "\n".join(lines)
    if "rerendered" in result:
        return "\n".join(f"{r['folder']}/README.md: {'rendered again from its record' if r['changed'] else 'unchanged'}"
                         for r in result["rerendered"])
    lines = [f"shipped {result['name']} (step {result['step']}, {result['weights_bytes'] / 1e6:.2f} MB of weights) "
             f"to {result['folder']}; card: {result['folder']}/README.md, rendered from its record "
             f"{result['folder']}/provenance.json"]
    for clip, s in result["heldout"].items():
        teacher = f" (teacher {s['teacher_psnr']:.2f} dB)" if "teacher_psnr" in s else ""
        lines.append(f"  held-out {clip}: {s['psnr']:.2f} dB PSNR{teacher}")
    return "\n".join(lines)
