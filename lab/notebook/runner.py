"""Execute a guided notebook headless, papermill-style: the code cell tagged ``parameters`` keeps its
defaults, a cell inserted right after it (tagged ``injected-parameters``) overrides some of them, and
every cell runs in a fresh ``python3`` kernel through nbclient; the first error stops the run.

    execute_notebook("notebooks/00_tour.ipynb", {"frames": 5, "size": "32x32"})
"""

from __future__ import annotations

import os
from pathlib import Path

from lab.errors import LabError
from lab.files import atomic_path
from lab.paths import REPO_ROOT

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


def parameters_cell_index(nb) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            return i
    raise LabError("the notebook has no code cell tagged 'parameters'; tag its first code cell with it "
                   "(JupyterLab: property inspector > cell tags)")


def inject_parameters(nb, parameters: dict):
    """Insert (or replace) the injected-parameters cell after the parameters cell. Values are written
    as Python literals (repr), so only plain values (numbers, strings, lists, dicts, None) are allowed."""
    import nbformat  # deferred: nbformat, from the notebooks extra

    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    if not parameters:
        return nb
    for k, v in parameters.items():
        if not k.isidentifier():
            raise LabError(f"parameter name {k!r} is not a Python identifier")
        if not isinstance(v, (int, float, str, bool, list, tuple, dict, type(None))):
            raise LabError(f"parameter {k}={v!r}: only plain values can be injected")
    src = "# Injected parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    cell = nbformat.v4.new_code_cell(src, metadata={"tags": [INJECTED_TAG]})
    nb.cells.insert(parameters_cell_index(nb) + 1, cell)
    return nb


def execute_notebook(path: str | os.PathLike, parameters: dict | None = None, *, timeout: int = 600,
                     cwd: str | os.PathLike | None = None, kernel_name: str = "python3"):
    """Run ``path`` top to bottom with ``parameters`` injected; returns the executed notebook (not saved).
    The kernel starts in ``cwd`` (default: the repository root, so ``import lab`` works even without
    an installed package). Raises nbclient's CellExecutionError, which names the failing cell."""
    import nbformat  # deferred: nbformat, from the notebooks extra
    from nbclient import NotebookClient  # deferred: nbclient, from the notebooks extra

    path = Path(path)
    if not path.is_file():
        raise LabError(f"no notebook at {path}")
    nb = nbformat.read(path, as_version=4)
    inject_parameters(nb, parameters or {})
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(cwd or REPO_ROOT)}})
    client.execute()
    return nb


def strip_outputs(path: str | os.PathLike) -> bool:
    """Remove outputs and execution counts (notebooks are stored without them). Returns True when the
    file changed; written atomically."""
    import nbformat  # deferred: nbformat, from the notebooks extra

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count, changed = [], None, True
        if cell.metadata.pop("execution", None) is not None:
            changed = True
    if changed:
        with atomic_path(path) as tmp:
            nbformat.write(nb, tmp)
    return changed
