"""Keep ratios: parse and validate them, and turn them into a width per channel group."""

from __future__ import annotations

from lab.arch import Architecture, ChannelGroup, get_architecture
from lab.arch.groups import group_widths  # noqa: F401 (one rule for pruning and the flash students)
from lab.errors import ConfigError

#: The keep argument that means each family's Flash-VAED widths (Architecture.flash_vaed_keep).
FLASH_VAED = "flash-vaed"


def parse_keep(text: str) -> float | dict[str, float]:
    """'0.25' -> 0.25; 'up2=0.125,up3=0.125' -> {'up2': 0.125, 'up3': 0.125}."""
    try:
        if "=" not in text:
            return float(text)
        out = {}
        for item in filter(None, (s.strip() for s in text.split(","))):
            stage, _, val = item.partition("=")
            out[stage.strip()] = float(val)
        return out
    except ValueError:
        raise ConfigError(f"cannot read keep ratio '{text}': give a number in (0, 1] (e.g. 0.25) or "
                          f"STAGE=RATIO pairs (e.g. up2=0.125,up3=0.125).") from None


def resolve_keep(keep, arch: Architecture | str, groups: list[ChannelGroup], num_up: int) -> dict[str, float]:
    """'flash-vaed' (the family's Flash-VAED widths), a single ratio (every prunable stage) or
    {stage: ratio} -> {stage: ratio} for prunable stages. Raises ConfigError for ratios outside (0, 1],
    unknown stages, or stages that cannot be pruned."""
    arch = get_architecture(arch)
    stages = list(arch.stage_paths(num_up))
    prunable = sorted({g.stage for g in groups if g.prunable}, key=stages.index)
    if keep == FLASH_VAED:
        keep = arch.flash_vaed_keep(num_up)
    elif isinstance(keep, str):
        keep = parse_keep(keep)
    if isinstance(keep, (int, float)) and not isinstance(keep, bool):
        keep = {s: float(keep) for s in prunable}
    if not isinstance(keep, dict) or not keep:
        raise ConfigError(f"keep must be a ratio in (0, 1] or a non-empty dict of stage -> ratio, got {keep!r}")
    out = {}
    for stage, r in keep.items():
        if stage not in stages:
            raise ConfigError(f"unknown stage '{stage}' in keep ratios; this {arch.title} decoder's stages are "
                              f"{', '.join(stages)} (prunable: {', '.join(prunable)}).")
        try:
            r = float(r)
        except (TypeError, ValueError):
            raise ConfigError(f"keep ratio for {stage} must be a number, got {r!r}") from None
        if not 0.0 < r <= 1.0:
            raise ConfigError(f"keep ratio for {stage} is {r}; it must be in (0, 1] (the fraction of channels "
                              f"kept, e.g. 0.125 keeps one in eight).")
        if r < 1.0 and stage not in prunable:
            why = arch.unprunable_reason(stage)
            raise ConfigError(f"stage '{stage}' cannot be pruned: {why}. Prunable stages: {', '.join(prunable)}; "
                              f"use ratio 1 elsewhere.")
        if r < 1.0:
            out[stage] = r
    return out
