"""python -m lab models: every decoder the lab knows."""

from lab.cli import table

HELP = "list the registered decoders (teachers, students, lightweight decoders)"


def add_arguments(p):
    p.add_argument("--family", choices=["teacher", "student", "lightweight"], help="only this family")


def run(args):
    from lab.models import list_entries  # deferred: torch loads when the command runs, not for --help
    return [e.describe() for e in list_entries(args.family)]


def render(rows):
    return table(rows, ["name", "family", "latent_channels", "compression", "decoder_params", "weights"])
