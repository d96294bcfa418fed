"""``python -m lab COMMAND``: one small module per command in this folder.

Each command module defines ``HELP``, ``add_arguments(parser)`` and ``run(args)``, which returns a
JSON-serialisable result; with ``--json`` that result is printed as one JSON document on stdout,
otherwise ``render(result)`` (or a plain dump) is printed. Logs and progress go to stderr.

The JSON is strict (RFC 8259): a non-finite number, such as the PSNR of two identical videos, is
written as the string "inf", "-inf" or "nan" (``float(s)`` reads it back), never as the bare
tokens Infinity/NaN that other JSON parsers reject.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys

from lab.jsonio import dumps
from lab.errors import LabError
from lab.files import disk_full_error, is_disk_full
from lab.progress import LogHandler, set_enabled

# Command name -> module under lab.cli. Add a command by adding a module and a line here.
COMMANDS = {
    "models": "lab.cli.models",
    "data": "lab.cli.data",
    "encode": "lab.cli.encode",
    "decode": "lab.cli.decode",
    "demo": "lab.cli.demo",
    "analyze": "lab.cli.analyze",
    "prune": "lab.cli.prune",
    "eval": "lab.cli.eval",
    "table": "lab.cli.decoder_table",
    "bench": "lab.cli.bench",
    "trace": "lab.cli.trace",
    "teacher": "lab.cli.teacher",
    "profile": "lab.cli.profile",
    "search": "lab.cli.search",
    "distill": "lab.cli.distill",
    "ship": "lab.cli.ship",
    "app": "lab.cli.app",
}

log = logging.getLogger("lab")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab", description="VAED Lab: fast VAE decoders for video diffusion.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, modname in COMMANDS.items():
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        p.add_argument("--json", action="store_true", help="print one JSON document on stdout (logs go to stderr)")
        p.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    set_enabled(not args.json)  # under --json a machine reads the output: no progress bars or lines
    # Log lines go above the progress bars on a terminal, never onto them (lab.progress.LogHandler).
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[LogHandler()],
                        format="%(message)s")
    # Keep third-party chatter (hub retries, deprecation notices) off the user's terminal.
    for noisy in ("diffusers", "huggingface_hub", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        result = _run(args)
    except LabError as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "type": type(exc).__name__}))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(dumps(result))
    else:
        render = getattr(args._module, "render", None)
        print(render(result) if render else dumps(result))
    return 0


def _run(args):
    """The command's run(); a full disk, whichever writer met it (Python's, safetensors', torch's, sqlite's),
    becomes the lab's one-line error naming the disk."""
    try:
        return args._module.run(args)
    except LabError:
        raise
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        raise disk_full_error(getattr(args, "out", None) or os.getcwd(), "run the command again.", exc) from None


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain text table for terminal output."""
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "x".join(str(x) for x in v) if all(isinstance(x, int) for x in v) else str(v)
    return str(v)
