"""Stage feature taps for feature alignment: forward hooks on the teacher's and the student's stages
(the family's stage map, lab.arch), and the map from a student stage output to the teacher's.

Wan decoders run their stages once per latent frame, so a hook sees one chunk per call; the chunks
are concatenated along time. For a pruned stage the student's channels are the teacher's kept
channels (``kept`` in the student config, recorded by lab.prune), so the student map is compared with
``teacher[:, kept]``; when widths differ and no indices are known, a learned 1x1x1 projection head
maps the student map to the teacher's width (the heads train with the student and live in the
training state, never in the saved student).
"""

from __future__ import annotations

import torch
from torch import nn

from lab.errors import ConfigError


def stage_modules(decoder) -> dict[str, nn.Module]:
    """Stage name -> the module whose output is the stage's output, or {} for decoders without the
    lab's stage map (lightweight decoders)."""
    arch = getattr(decoder, "arch", None)
    if arch is None:
        return {}
    vae = decoder.vae
    paths = arch.stages_of(vae)
    return {stage: vae.get_submodule(ps[-1]) for stage, ps in paths.items()}


class StageTaps:
    """Forward hooks that record the outputs of named stages; ``collect()`` returns and clears them."""

    def __init__(self, decoder, stages: list[str]):
        mods = stage_modules(decoder)
        self._chunks: dict[str, list[torch.Tensor]] = {s: [] for s in stages}
        self._handles = [mods[s].register_forward_hook(self._hook(s)) for s in stages]

    def _hook(self, stage):
        def hook(_module, _inputs, output):
            self._chunks[stage].append(output[0] if isinstance(output, (tuple, list)) else output)
        return hook

    def collect(self) -> dict[str, torch.Tensor]:
        out = {s: torch.cat(c, dim=2) if len(c) > 1 else c[0] for s, c in self._chunks.items() if c}
        for c in self._chunks.values():
            c.clear()
        return out

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def kept_channels(student, stage: str) -> list[int] | None:
    """The teacher channel indices a pruned student kept at a stage's output, if it records them."""
    cfg = getattr(getattr(student, "vae", None), "config", None)
    kept = dict(getattr(cfg, "kept", None) or {}) if cfg is not None else {}
    if not kept:
        return None
    group = student.arch.stage_output_group(stage, list(student.teacher_group_widths()),
                                            student.arch.num_up_blocks(student.vae))
    return list(kept[group]) if group in kept else None


def comparable_stages(teacher, student, requested: list[str] | None = None) -> list[str]:
    """Stages both decoders have (by the lab's stage names); conv_in and head are left out by default
    (conv_in is a single conv; head outputs pixels, which the pixel losses already compare)."""
    t, s = stage_modules(teacher), stage_modules(student)
    common = [k for k in t if k in s]
    if requested is None:
        return [k for k in common if k not in ("conv_in", "head")]
    bad = [k for k in requested if k not in common]
    if bad:
        raise ConfigError(f"feature_stages {bad} are not stages of both the teacher and the student; "
                          f"common stages: {', '.join(common) or 'none'}.")
    return list(requested)


class FeatureAligner(nn.Module):
    """Turns (student map, teacher map) pairs into comparable tensors. Holds the projection heads."""

    def __init__(self, student, stages: list[str], student_widths: dict[str, int], teacher_widths: dict[str, int]):
        super().__init__()
        self.stages = list(stages)
        self.kept: dict[str, list[int]] = {}
        self.heads = nn.ModuleDict()
        for s in stages:
            cs, ct = student_widths[s], teacher_widths[s]
            if cs == ct:
                continue
            idx = kept_channels(student, s)
            if idx is not None and len(idx) == cs:
                self.kept[s] = idx
            else:
                self.heads[s] = nn.Conv3d(cs, ct, 1)

    def pair(self, stage: str, student_map: torch.Tensor, teacher_map: torch.Tensor):
        if stage in self.kept:
            idx = torch.as_tensor(self.kept[stage], device=teacher_map.device)
            return student_map, teacher_map.index_select(1, idx)
        if stage in self.heads:
            return self.heads[stage](student_map), teacher_map
        return student_map, teacher_map

    def describe(self) -> dict:
        return {s: ("kept-channels" if s in self.kept else "projection" if s in self.heads else "direct")
                for s in self.stages}
