"""``python -m lab --help`` and ``python -m lab COMMAND --help`` build the parser without torch (they took
about 6 s when every command module imported the models), and the names the help texts list where they
cannot import the module that defines them stay in step with it."""

import json
import subprocess
import sys

from lab.cli import COMMANDS, build_parser

PROBE = """
import contextlib, io, json, sys
from lab.cli import COMMANDS, main
loaded = {}
for argv in [["--help"]] + [[name, "--help"] for name in COMMANDS]:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit:
            pass
    loaded[" ".join(argv)] = [m for m in ("torch", "diffusers", "numpy") if m in sys.modules]
print(json.dumps(loaded))
"""


def test_help_imports_no_torch():
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = json.loads(proc.stdout)
    assert set(loaded) == {"--help", *(f"{name} --help" for name in COMMANDS)}
    assert all(mods == [] for mods in loaded.values()), loaded


def _help(command: str) -> str:
    """Every help text of COMMAND's options, unwrapped (argparse's wrapping breaks words at hyphens)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return " ".join(a.help or "" for a in sub.choices[command]._actions)


def test_help_texts_list_the_current_names():
    from lab.devices import DTYPES
    from lab.eval.evaluate import DEFAULT_METRICS, METRICS
    from lab.eval.table import DEFAULT_REPORT
    from lab.ops.search import DEFAULT_CANDIDATES
    from lab.runtime.compiled import AUTO_MODES, MODES
    from lab.cli.common import DTYPE_NAMES
    from lab.teachers.presets import presets

    assert sorted(DTYPE_NAMES) == sorted(DTYPES)
    assert {"mini-wan", "mini-ltx"} <= set(presets())  # the names the teacher help gives as examples
    assert f"from {','.join(METRICS)} (default {','.join(DEFAULT_METRICS)};" in _help("eval")
    bench = _help("bench")
    assert all(mode in bench for mode in MODES) and f"(if not given: {','.join(AUTO_MODES)};" in bench
    assert f"(default {','.join(DEFAULT_CANDIDATES)})" in _help("search")
    assert f"(default path {DEFAULT_REPORT})" in _help("table")
    assert "e.g. mini-wan or mini-ltx" in _help("teacher")


def test_an_unknown_teacher_preset_lists_the_presets(capsys):
    from lab.cli import main
    from lab.teachers.presets import presets
    assert main(["teacher", "train", "--model", "nope", "--steps", "1"]) == 1
    err = capsys.readouterr().err
    assert "unknown teacher model 'nope'" in err and all(name in err for name in presets())


def test_an_unknown_compile_mode_is_one_line(capsys):
    from lab.cli import main
    assert main(["bench", "--decoders", "wan2.1-tiny", "--weights", "random", "--compile", "fastest"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --compile: unknown mode 'fastest'; choose among default, reduce-overhead, "
                   "max-autotune-no-cudagraphs, max-autotune"]
