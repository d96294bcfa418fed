"""Channel groups: the sets of layers that must be pruned together (Torch-Pruning's dependency groups),
listed explicitly by each family's Architecture (generic tracers hang on Wan's cached causal decoder,
and an explicit list is inspectable).

A group is one channel space, e.g. the residual stream of a stage. It names
- ``producers``: layers whose output rows write these channels (role 'rows', or 'rows_paired' for
  Wan's temporal upsampler, whose 2C outputs are two frames of the same C channels);
- ``norms``: RMS norms whose gamma is indexed by these channels (the path of the norm);
- ``consumers``: layers whose input columns read these channels, each with the norm (if any) that is
  applied between the channels and the layer. The tensor a consumer actually sees is what analysis
  records (a forward pre-hook on the consumer), so least-squares folds are fitted on real inputs.

The tap names (``consumer_tap``, ``norm_tap``) are how a group member's recorded statistics are found
again: analysis records under them, weight transfer reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

#: Depth-to-space upsamplers with stride (2, 2, 2) write 8 conv rows per output channel.
D2S_FACTOR = 8


@dataclass(frozen=True)
class Consumer:
    path: str
    norm: str | None = None  # the RMS norm applied (then SiLU) between the group and this layer


@dataclass
class ChannelGroup:
    name: str
    stage: str
    width: int
    # (path, role): 'rows' (output rows are the channels), 'rows_paired' (Wan's temporal upsampler: its
    # 2C outputs are two frames of the same C channels), 'rows_d2s' (LTX depth-to-space upsampler: rows
    # c*8 .. c*8+7 are the 2x2x2 sub-positions of channel c)
    producers: list[tuple[str, str]] = field(default_factory=list)
    norms: list[str] = field(default_factory=list)  # RMS norms and LayerNorms over these channels
    consumers: list[Consumer] = field(default_factory=list)
    prunable: bool = True
    note: str = ""

    def describe(self) -> dict:
        return {"name": self.name, "stage": self.stage, "width": self.width, "prunable": self.prunable,
                "producers": [f"{p} ({r})" for p, r in self.producers], "norms": list(self.norms),
                "consumers": [c.path + (f" (after {c.norm})" if c.norm else "") for c in self.consumers],
                **({"note": self.note} if self.note else {})}


def consumer_tap(path: str) -> str:
    """Name under which the input of a consumer layer is recorded."""
    return f"in:{path}"


def norm_tap(path: str) -> str:
    return f"norm:{path}"


def conv_input_groups(vae: nn.Module, stage_paths: dict[str, list[str]]) -> list[ChannelGroup]:
    """Analysis-only groups for decoders whose channel map no longer applies (swapped students): the
    input of every conv with a spatial or temporal kernel, per stage."""
    groups = []
    for stage, roots in stage_paths.items():
        for root in roots:
            module = vae.get_submodule(root)
            for rel, m in module.named_modules():
                if isinstance(m, (nn.Conv2d, nn.Conv3d)) and m.in_channels > 1 and m.groups == 1:
                    path = f"{root}.{rel}" if rel else root
                    groups.append(ChannelGroup(f"{stage}:{path}", stage, m.in_channels, prunable=False,
                                               consumers=[Consumer(path)], note="input of one conv (analysis only)"))
    return groups


def group_widths(groups: list[ChannelGroup], ratios: dict[str, float]) -> dict[str, int]:
    """Width per prunable group of the pruned stages: round(ratio * width), at least 1."""
    return {g.name: max(1, round(ratios[g.stage] * g.width)) for g in groups if g.prunable and g.stage in ratios}
