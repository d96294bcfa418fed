"""python -m lab models: every decoder the lab knows."""

from lab.cli import table
from lab.models import list_entries

HELP = "list the registered decoders (teachers, students, lightweight decoders)"


def add_arguments(p):
    p.add_argument("--family", choices=["teacher", "student", "lightweight"], help="only this family")


def run(args):
    return [e.describe() for e in list_entries(args.family)]


def render(rows):
    return table(rows, ["name", "family", "latent_channels", "compression", "decoder_params", "weights"])
