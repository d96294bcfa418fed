"""What a VAE family is to the rest of the lab (an ``Architecture``, lab.arch.base), the channel groups
pruning keeps consistent (lab.arch.groups), and the registry that finds a decoder's family. The families
themselves are plug-ins (lab/families, lab.plugins): each registers its Architecture here.

Teachers and students carry their family as ``decoder.arch`` (an Architecture, or None for decoders of
another layout such as the lightweight ones); ``arch_of`` returns it or explains why there is none.
"""

from __future__ import annotations

from torch import nn

from lab.arch.base import Architecture
from lab.arch.groups import ChannelGroup, Consumer
from lab.errors import LabError
from lab.plugins import load_families

ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(arch: Architecture) -> Architecture:
    if not arch.name or arch.name in ARCHITECTURES:
        raise LabError(f"architecture name {arch.name!r} is empty or taken")
    ARCHITECTURES[arch.name] = arch
    return arch


def architectures() -> dict[str, Architecture]:
    """Every registered family's Architecture, by name (the families are loaded first)."""
    load_families()
    return ARCHITECTURES


def get_architecture(arch: Architecture | str) -> Architecture:
    """An Architecture, or the one registered under that name."""
    if isinstance(arch, Architecture):
        return arch
    if arch not in architectures():
        raise LabError(f"unknown architecture '{arch}'; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch]


def arch_of_vae(vae: nn.Module) -> Architecture:
    """The Architecture of a diffusers-style VAE (a teacher's model, or a student's)."""
    for arch in architectures().values():
        if arch.owns(vae):
            return arch
    raise LabError(f"a {type(vae).__name__} is not a VAE of a known family ({', '.join(architectures())})")


def arch_of(decoder, what: str = "this") -> Architecture:
    """The Architecture of a teacher or student adapter; a clear error for decoders without one
    (``what`` says what needed it, e.g. 'operator swaps')."""
    arch = getattr(decoder, "arch", None)
    if arch is None:
        raise LabError(f"{getattr(decoder, 'name', decoder)} (adapter kind '{getattr(decoder, 'adapter_kind', '?')}') "
                       f"is not a decoder of a known VAE family ({', '.join(a.title for a in architectures().values())} "
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


__all__ = ["ARCHITECTURES", "Architecture", "ChannelGroup", "Consumer", "arch_of", "arch_of_vae", "architectures", "channel_groups",
           "check_stage_names", "decoder_stages", "get_architecture", "register_architecture"]
