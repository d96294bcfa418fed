"""VAE families as plug-ins (timm's ``@register_model``, at the scale of a family).

A family is one package under ``lab/families/`` that declares everything family-specific (its diffusers
classes, teacher adapter, catalog entries, presets, conv readers, norms, latent statistics, decoder
parts, streaming, folder detection, student builder, fused-runtime rules) and registers each into the
registry of the layer that uses it (lab.arch, lab.models.registry, lab.ops.operators, lab.prune.students,
lab.runtime.fused, ...). The core never imports a family: the registries call ``load_families()`` before
they answer, and it imports every package in lab/families by name. So families sit at the top of the import
graph and adding one touches no file of the core: a new package in lab/families, or a distribution that
declares an entry point in the ``vaed_lab.families`` group (its module registers itself on import).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import pkgutil
import threading
from pathlib import Path

log = logging.getLogger("lab")

#: where the families that ship with the lab live: every package in this folder is one (found by listing it,
#: so adding a family edits no file of the core)
FAMILIES_DIR = Path(__file__).resolve().parent / "families"
#: third-party families: ``[project.entry-points."vaed_lab.families"] myfamily = "mypkg.family"``
ENTRY_POINT_GROUP = "vaed_lab.families"

_lock = threading.RLock()
_state = {"loaded": False, "loading": False}


def builtin_families() -> list[str]:
    """The module names of the packages in lab/families (sorted; a family that extends another imports it)."""
    return sorted(f"lab.families.{m.name}" for m in pkgutil.iter_modules([str(FAMILIES_DIR)]) if m.ispkg)


def load_families() -> None:
    """Import every family once (each registers itself). Re-entrant: a family's own registrations call the
    registries, which call this while it runs, and get what is registered so far. Another thread waits on the
    lock until every family is in (only the loading thread itself may see a partial registry)."""
    if _state["loaded"]:
        return
    with _lock:
        if _state["loaded"] or _state["loading"]:
            return
        _state["loading"] = True
        try:
            for name in builtin_families():
                importlib.import_module(name)
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                try:
                    ep.load()
                except Exception as exc:  # noqa: BLE001 - a broken third-party family must not break the lab
                    log.warning("VAE family plug-in %s (%s) failed to load: %s", ep.name, ep.value, exc)
            _state["loaded"] = True
        finally:
            _state["loading"] = False
