"""The layering rules of lab.arch (issue 20): one place knows each VAE family, and imports point one way."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
import_graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(import_graph)


def test_imports_have_no_cycle():
    # Function-local imports count too: a cycle hidden inside a function is still a cycle.
    for level in ("module", "package"):
        assert import_graph.cycles(import_graph.graph(level, local=True)) == [], level


def test_the_cycle_finder_finds_cycles():
    assert import_graph.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_arch_sits_below_the_rest_of_the_lab():
    # Models, analysis, pruning, swaps and distillation ask lab.arch; lab.arch asks none of them.
    g = import_graph.graph("module", local=True)
    for module, targets in g.items():
        if module.startswith("lab.arch"):
            outside = {t for t in targets if not t.startswith("lab.arch") and t not in ("lab.errors", "lab.plugins")}
            assert not outside, f"{module} imports {outside}"


def test_the_core_never_imports_a_family():
    # Families are plug-ins (lab.plugins): they import the layers they register into, never the reverse.
    g = import_graph.graph("module", local=True)
    for module, targets in g.items():
        if not module.startswith("lab.families"):
            assert not {t for t in targets if t.startswith("lab.families")}, module


_SWITCH = re.compile(r"""(==|!=)\s*["'](wan|ltx)(-student)?["']|in\s*\(\s*["'](wan|ltx)["']\s*,|\.split\(["']-["']\)\[0\]""")


def test_no_family_switch_outside_the_families():
    hits = []
    for path in sorted((ROOT / "lab").rglob("*.py")):
        if path.relative_to(ROOT / "lab").parts[:1] in (("arch",), ("families",)):
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if _SWITCH.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, "family switches outside lab/arch:\n" + "\n".join(hits)


def test_the_switch_pattern_catches_what_it_should():
    # The rule above would pass vacuously if its pattern matched nothing.
    for line in ('if kind == "wan":', "x != 'ltx-student'", 'if k in ("wan", "ltx"):', 'k.split("-")[0]'):
        assert _SWITCH.search(line), line
    assert not _SWITCH.search('name = "wan2.1"')
