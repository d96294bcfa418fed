"""Student construction per family: the narrower model at the chosen widths, with the teacher's
selected filters copied and the dropped channels folded into the next layers.

A builder per Architecture, looked up through a registry (as Torch-Pruning dispatches per layer type)
rather than a switch on the family: each family registers its builder next to its student class
(lab/families).
"""

from __future__ import annotations

from typing import Callable

from lab.arch import Architecture
from lab.errors import ConfigError
from lab.plugins import load_families

#: (teacher, groups, widths, kept, ratios, criterion, analysis, fold, ridge, fold_norms)
#:   -> (student VAE, student adapter class, transfer report)
StudentBuilder = Callable[..., tuple]
_BUILDERS: dict[str, StudentBuilder] = {}


def register_student_builder(arch: Architecture, builder: StudentBuilder) -> None:
    _BUILDERS[arch.name] = builder


def student_builder(arch: Architecture) -> StudentBuilder:
    load_families()
    if arch.name not in _BUILDERS:
        raise ConfigError(f"no pruned student is defined for {arch.title} teachers yet.")
    return _BUILDERS[arch.name]
