"""The lab's main entry points, importable from ``lab`` itself (``from lab import prune``): where each
one lives, resolved only when first used, so ``import lab`` (and ``python -m lab --help``) stays light
and never imports torch.

``prune`` and ``distill`` share their names with the packages that hold them (``lab.prune``,
``lab.distill``), and Python binds a subpackage to the attribute of the same name on its parent
whenever it is imported, so ``lab.prune`` is always the package. Those two packages are therefore
callable: calling the package calls its function, ``lab.prune(teacher, 0.25)`` is
``lab.prune.prune(teacher, 0.25)`` (same signature, same docstring).
"""

from __future__ import annotations

import importlib
import sys
import types

#: name -> the module that defines it (the API reference documents each there, docs/api/)
ENTRY_POINTS = {
    "load_decoder": "lab.models.registry",
    "analyze": "lab.analysis.run",
    "prune": "lab.prune.build",
    "distill": "lab.distill.run",
    "evaluate": "lab.eval.evaluate",
    "bench": "lab.eval.bench",
    "as_diffusers_vae": "lab.models.diffusers_compat",
}


def resolve(name: str):
    """The object ``lab.<name>`` stands for: the function, or for a name that is also a subpackage of
    ``lab`` (prune, distill), that package made callable (see the module docstring)."""
    function = getattr(importlib.import_module(ENTRY_POINTS[name]), name)
    package = sys.modules.get(f"lab.{name}")
    return package if package is not None and callable(package) else function


class CallablePackage(types.ModuleType):
    """A package that can be called like its main function (``__entry__``)."""

    def __call__(self, *args, **kwargs):
        return self.__entry__(*args, **kwargs)

    @property
    def __signature__(self):  # what inspect.signature and help() show for the call
        import inspect  # deferred: only introspection needs it
        return inspect.signature(self.__entry__)


def make_callable(package_name: str, function) -> None:
    """Make the (already imported) package ``package_name`` callable as ``function``."""
    package = sys.modules[package_name]
    package.__class__ = CallablePackage
    package.__entry__ = function
