"""What ``python -m lab teacher train --model NAME`` can train: each VAE family registers its trainable presets
(the diffusers class and config, so that what is trained is exactly what ``load_decoder`` builds, the clip
geometry it encodes, and the training defaults that suit it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.errors import LabError
from lab.models.registry import resolve_alias
from lab.plugins import load_families


@dataclass(frozen=True)
class Preset:
    cls: type
    config: dict
    frame_multiple: int    # a clip encodes as 1 + frame_multiple * k frames
    spatial_multiple: int  # and sizes that are multiples of this
    #: training defaults for the teacher CLI (frames, crop, batch) where the user gives none
    defaults: dict = field(default_factory=dict)
    #: held-out PSNR (dB) from which a teacher of this preset is useful (its card says how far it is)
    target_psnr: float | None = None


_PRESETS: dict[str, Preset] = {}


def register_teacher_preset(name: str, preset: Preset) -> Preset:
    _PRESETS[name] = preset
    return preset


def presets() -> dict[str, Preset]:
    load_families()
    return dict(_PRESETS)


def get_preset(name: str) -> Preset:
    """The preset ``name``, or the one a former name of it now means (a run recorded under 'mini-wan-w32', the
    wide teacher's name before it became mini-wan, still resumes and exports)."""
    table = presets()
    name = resolve_alias(name)
    if name not in table:
        raise LabError(f"unknown teacher model '{name}'; trainable: {', '.join(table)}")
    return table[name]
