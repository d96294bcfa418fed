"""The lab's import graph: which module imports which, at module level and inside functions, and the
cycles in it. `python scripts/import_graph.py` prints the cycles (strongly connected components) of
the package-level graph with and without function-local imports, and the function-local imports
that close them; tests/arch/test_import_graph.py holds the layering rules it checks."""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported lab name, at module level?) for every import statement of one file; a name may be a
    module or an attribute of one (``from lab.x import name``), resolved in graph()."""
    tree = ast.parse(path.read_text(), str(path))
    local = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(f)}
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names]
        out += [(n, id(node) not in local) for n in names if n == "lab" or n.startswith("lab.")]
    return out


def graph(level: str = "module", local: bool = True) -> dict[str, set[str]]:
    """Edges between lab modules (``level='module'``) or lab packages (``level='package'``: lab.models,
    lab.arch, ...). ``local``: include imports inside functions."""
    files = sorted((ROOT / "lab").rglob("*.py"))
    known = {module_name(f) for f in files}
    g: dict[str, set[str]] = defaultdict(set)
    for f in files:
        src = module_name(f)
        for target, at_top in imports(f):
            if not (at_top or local):
                continue
            while target not in known and "." in target:  # `from lab.x import name` names a module or an attribute
                target = target.rpartition(".")[0]
            if target not in known or target == "lab":
                continue
            a, b = (src, target) if level == "module" else (_package(src), _package(target))
            if a != b:
                g[a].add(b)
    return g


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(g):
        if v not in index:
            visit(v)
    return out


def main() -> None:
    for level in ("module", "package"):
        for local in (False, True):
            found = cycles(graph(level, local))
            what = "with function-local imports" if local else "module-level imports only"
            print(f"{level} graph, {what}: {len(found)} cycle(s)")
            for c in found:
                print("   ", " <-> ".join(c))


if __name__ == "__main__":
    main()
