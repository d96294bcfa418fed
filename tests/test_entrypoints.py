"""The main entry points importable from ``lab`` (resolved lazily: ``import lab`` never imports torch), and
the API reference that documents them (docs/api, built by ``make test`` with mkdocs --strict)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lab
from lab.entrypoints import ENTRY_POINTS
from lab.errors import LabError

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "api"


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_lab_is_light_and_lists_the_entry_points():
    # a fresh process: this one has long imported torch
    assert _python("import sys, lab; print('torch' in sys.modules, sorted(set(lab.__all__) & set(dir(lab))))") == \
        f"False {sorted(['__version__', *ENTRY_POINTS])}"
    assert set(lab.__all__) == {"__version__", *ENTRY_POINTS}
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        lab.no_such_name  # noqa: B018


@pytest.mark.parametrize("name", sorted(set(ENTRY_POINTS) - {"prune", "distill"}))
def test_each_name_is_the_function_it_documents(name):
    import importlib
    assert getattr(lab, name) is getattr(importlib.import_module(ENTRY_POINTS[name]), name)


def test_prune_and_distill_are_their_callable_packages_in_any_import_order():
    # importing a subpackage first binds lab.prune to the package: it must still call like the function
    out = _python("import lab.prune.criteria, lab.distill.config, inspect\n"
                  "from lab import prune, distill\n"
                  "import lab.prune.build as b, lab.distill.run as r\n"
                  "print(prune is lab.prune, callable(prune), inspect.signature(prune) == inspect.signature(b.prune),"
                  " inspect.signature(distill) == inspect.signature(r.distill))")
    assert out == "True True True True"


def test_lab_prune_runs_the_real_pruning():
    from lab import load_decoder, prune
    teacher = load_decoder("wan2.1-tiny", weights="random")
    z = torch.randn(1, teacher.geometry.channels, 2, 4, 4)
    student, info = prune(teacher, 0.5, latents=z)
    assert info["decoder_params"] < info["teacher_decoder_params"] == teacher.decoder_params()
    assert student.decode(z).shape == teacher.decode(z).shape


def test_lab_distill_runs_the_real_distillation_entry(tmp_path):
    from lab import distill
    # The real distill checks its config before any work: an unknown key is named in one line.
    with pytest.raises(LabError, match="no_such_key"):
        distill({"no_such_key": 1}, tmp_path / "run")


def _documented() -> dict[str, str]:
    """Every ``::: object.path`` of the reference -> the page that shows it."""
    return {m: page.name for page in DOCS.glob("*.md") for m in re.findall(r"^::: (\S+)", page.read_text(), re.M)}


def test_the_reference_documents_every_entry_point_with_a_docstring():
    griffe = pytest.importorskip("griffe", reason="the docs tools are absent: pip install -e '.[docs]'")
    documented = _documented()
    for name, module in ENTRY_POINTS.items():
        assert f"{module}.{name}" in documented, f"docs/api does not document {module}.{name}"
    package = griffe.GriffeLoader(search_paths=[str(REPO)]).load("lab")
    for path, page in documented.items():
        obj = package[path.removeprefix("lab.")]
        assert obj.docstring and obj.docstring.value.strip(), f"{path} (docs/api/{page}) has no docstring"
    index = (DOCS / "index.md").read_text()  # the overview's table lists each
    assert all(f"[`{name}`]" in index for name in ENTRY_POINTS)
