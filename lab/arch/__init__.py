"""The VAE families the lab knows, one ``Architecture`` object each (lab.arch.base), and the registry
that finds a decoder's. Adding a family: one module here defining its Architecture, one line below; its
teacher adapter and catalog entry in lab/models; and, to prune it, a student class (lab/models/students)
whose builder registers in lab/prune/students.py (Wan 2.2 and LTX-2 needed one each: their blocks differ).

Teachers and students carry their family as ``decoder.arch`` (an Architecture, or None for decoders of
another layout such as the lightweight ones); ``arch_of`` returns it or explains why there is none.
"""

from __future__ import annotations

from torch import nn

from lab.arch.base import Architecture
from lab.arch.groups import ChannelGroup, Consumer
from lab.arch.ltx import LTX
from lab.arch.ltx2 import LTX2
from lab.arch.taef2 import TAEF2
from lab.arch.wan import WAN
from lab.arch.wan22 import WAN22
from lab.errors import LabError

ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(arch: Architecture) -> Architecture:
    if not arch.name or arch.name in ARCHITECTURES:
        raise LabError(f"architecture name {arch.name!r} is empty or taken")
    ARCHITECTURES[arch.name] = arch
    return arch


register_architecture(WAN)
register_architecture(LTX)
register_architecture(LTX2)
register_architecture(WAN22)
register_architecture(TAEF2)


def get_architecture(arch: Architecture | str) -> Architecture:
    """An Architecture, or the one registered under that name."""
    if isinstance(arch, Architecture):
        return arch
    if arch not in ARCHITECTURES:
        raise LabError(f"unknown architecture '{arch}'; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch]


def arch_of(decoder, what: str = "this") -> Architecture:
    """The Architecture of a teacher or student adapter; a clear error for decoders without one
    (``what`` says what needed it, e.g. 'operator swaps')."""
    arch = getattr(decoder, "arch", None)
    if arch is None:
        raise LabError(f"{getattr(decoder, 'name', decoder)} (adapter kind '{getattr(decoder, 'adapter_kind', '?')}') "
                       f"is not a decoder of a known VAE family ({', '.join(a.title for a in ARCHITECTURES.values())} "
                       f"and their students); {what} needs one.")
    return arch


def channel_groups(decoder) -> list[ChannelGroup]:
    """The channel groups of a decoder adapter (teacher or student)."""
    return arch_of(decoder, "channel analysis").channel_groups(decoder.vae)


def decoder_stages(decoder) -> dict[str, list[nn.Module]]:
    """Stage name -> modules: by the family's stage map for teachers and their students, by the
    decoder's own ``stage_map()`` for decoders of another layout (the lightweight family)."""
    if getattr(decoder, "arch", None) is None and callable(getattr(decoder, "stage_map", None)):
        return decoder.stage_map()
    paths = arch_of(decoder, "a stage map").stages_of(decoder.vae)
    return {stage: [decoder.vae.get_submodule(p) for p in ps] for stage, ps in paths.items()}


def check_stage_names(decoder, names) -> None:
    known = list(arch_of(decoder, "a stage map").stages_of(decoder.vae))
    bad = [n for n in names if n not in known]
    if bad:
        raise LabError(f"{decoder.name} has no stage(s) {', '.join(map(str, bad))}; its stages are "
                       f"{', '.join(known)}.")


__all__ = ["ARCHITECTURES", "Architecture", "ChannelGroup", "Consumer", "LTX", "LTX2", "TAEF2", "WAN", "arch_of", "channel_groups",
           "check_stage_names", "decoder_stages", "get_architecture", "register_architecture"]
