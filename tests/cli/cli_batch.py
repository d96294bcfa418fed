"""Run many ``python -m lab`` command lines for the tests at the cost of one start-up.

Importing the lab (torch, diffusers) takes seconds; a test of twenty command lines would spend
minutes there. This script imports it once, then runs each command line in a forked child exactly
as ``python -m lab`` does (``sys.exit(main())``; an uncaught exception prints its traceback and
exits 1), with the child's stdout and stderr in files, and reports each exit status (a negative one
for a signal, e.g. a segfault). The parent never runs torch code, so forking it is safe. Child i has
LAB_CLI_CASE=i in its environment.

    python tests/cli/cli_batch.py < [["models"], ["decode", "--help"]]  ->  [{"rc", "stdout", "stderr"}, ...]
"""

import json
import os
import sys
import tempfile
import traceback

# What the commands' run() functions import: torch, diffusers and the lab's models, data and eval layers.
PRELOAD = ("torch", "lab.devices", "lab.models", "lab.data.video", "lab.data.latents", "lab.arch", "lab.ops.swap",
           "lab.ops.profiler", "lab.ops.search", "lab.eval.bench", "lab.eval.evaluate", "lab.eval.table",
           "lab.runtime.compiled", "lab.teachers.config")


def _child(argv: list[str], case: int, out: str, err: str) -> None:
    code = 1
    try:
        for fd, path in ((1, out), (2, err)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        os.environ["LAB_CLI_CASE"] = str(case)  # tags what the command (and its subprocesses) does, e.g. in logs
        sys.argv = ["python -m lab", *argv]
        from lab.cli import main
        code = main(argv)
    except SystemExit as exc:  # argparse: usage errors (2) and --help (0)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    except BaseException:  # what the interpreter would print for python -m lab
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)


def run(argv: list[str], tmp: str, i: int) -> dict:
    out, err = os.path.join(tmp, f"{i}.out"), os.path.join(tmp, f"{i}.err")
    pid = os.fork()
    if pid == 0:
        _child(argv, i, out, err)
    _, status = os.waitpid(pid, 0)
    with open(out) as o, open(err) as e:
        return {"rc": os.waitstatus_to_exitcode(status), "stdout": o.read(), "stderr": e.read()}


def main() -> None:
    argvs = json.load(sys.stdin)
    import importlib

    import lab.cli
    lab.cli.build_parser()
    # The CLI imports torch and the models only when a command runs (its --help stays fast); the children
    # share them when the parent imports them once here.
    for name in PRELOAD:
        importlib.import_module(name)
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(argv, tmp, i) for i, argv in enumerate(argvs)]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
