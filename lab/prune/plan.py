"""Keep ratios: parse and validate them, and turn them into a width per channel group."""

from __future__ import annotations

from lab.analysis import ChannelGroup
from lab.errors import ConfigError
from lab.models.stages import stage_paths

#: Flash-VAED's pruned widths (section 1.3 of docs/METHOD.md); other stages keep full width. For
#: decoders with another number of up blocks (LTX-Video 0.9.5+ has 3), see flash_vaed_keep().
FLASH_VAED_KEEP = {"wan": {"up2": 0.125, "up3": 0.125}, "ltx": {"up2": 0.25, "up3": 0.25}}
FLASH_VAED_RATIO = {"wan": 0.125, "ltx": 0.25}


def flash_vaed_keep(kind: str, num_up: int) -> dict[str, float]:
    """The Flash-VAED widths for a decoder: the ratio of its family in the last two up blocks (the
    high-resolution stages; up2/up3 of Wan 2.1 and LTX-Video 0.9)."""
    if kind not in FLASH_VAED_RATIO:
        raise ConfigError(f"the flash-vaed widths are defined for wan and ltx decoders, not '{kind}'")
    return {f"up{i}": FLASH_VAED_RATIO[kind] for i in range(max(0, num_up - 2), num_up)}


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


def resolve_keep(keep, kind: str, groups: list[ChannelGroup], num_up: int) -> dict[str, float]:
    """A single ratio (every prunable stage) or {stage: ratio} -> {stage: ratio} for prunable stages.
    Raises ConfigError for ratios outside (0, 1], unknown stages, or stages that cannot be pruned."""
    stages = list(stage_paths(kind, num_up))
    prunable = sorted({g.stage for g in groups if g.prunable}, key=stages.index)
    if isinstance(keep, str):
        keep = parse_keep(keep)
    if isinstance(keep, (int, float)) and not isinstance(keep, bool):
        keep = {s: float(keep) for s in prunable}
    if not isinstance(keep, dict) or not keep:
        raise ConfigError(f"keep must be a ratio in (0, 1] or a non-empty dict of stage -> ratio, got {keep!r}")
    out = {}
    for stage, r in keep.items():
        if stage not in stages:
            raise ConfigError(f"unknown stage '{stage}' in keep ratios; this {kind} decoder's stages are "
                              f"{', '.join(stages)} (prunable: {', '.join(prunable)}).")
        try:
            r = float(r)
        except (TypeError, ValueError):
            raise ConfigError(f"keep ratio for {stage} must be a number, got {r!r}") from None
        if not 0.0 < r <= 1.0:
            raise ConfigError(f"keep ratio for {stage} is {r}; it must be in (0, 1] (the fraction of channels "
                              f"kept, e.g. 0.125 keeps one in eight).")
        if r < 1.0 and stage not in prunable:
            if kind == "wan" and stage in ("conv_in", "mid", "up0"):
                why = "conv_in, mid and up0 share one residual stream with the mid attention, whose widths are tied to it"
            elif stage == "conv_in":
                why = "it writes the mid stage's stream (prune that with mid=RATIO)"
            else:
                why = "it has no channels of its own (it reads the last stage's stream)"
            raise ConfigError(f"stage '{stage}' cannot be pruned: {why}. Prunable stages: {', '.join(prunable)}; "
                              f"use ratio 1 elsewhere.")
        if r < 1.0:
            out[stage] = r
    return out


def group_widths(groups: list[ChannelGroup], ratios: dict[str, float]) -> dict[str, int]:
    """Width per prunable group of the pruned stages: round(ratio * width), at least 1."""
    return {g.name: max(1, round(ratios[g.stage] * g.width)) for g in groups if g.prunable and g.stage in ratios}
