"""What analysis records for a set of channel groups (lab.arch.groups): the input of every consumer
layer, and the input of every norm over the groups' channels."""

from __future__ import annotations

from torch import nn

from lab.arch.groups import ChannelGroup, consumer_tap, norm_tap


def taps(groups: list[ChannelGroup], root: nn.Module | None = None) -> dict[str, tuple[str, bool]]:
    """tap name -> (module path, diag_only). Consumers get a full Gram; RMS norms and LayerNorms get a
    full Gram when ``root`` is given (see lab.models.students.folded_norm and
    ChannelAnalysis.layernorm_affine), else second moments only."""
    out: dict[str, tuple[str, bool]] = {}
    for g in groups:
        for c in g.consumers:
            out[consumer_tap(c.path)] = (c.path, False)
        for n in g.norms:
            # LTX's LayerNorm (shortcut), LTX's RMSNorm, LTX-2's PerChannelRMSNorm (and its students'
            # LTX2RMSNorm) and Wan's WanRMS_norm, whose pruned forms estimate the full channels' energy
            # from the kept ones (both need the off-diagonal terms).
            full = root is not None and (isinstance(root.get_submodule(n), nn.LayerNorm)
                                         or type(root.get_submodule(n)).__name__ in
                                         ("RMSNorm", "WanRMS_norm", "PerChannelRMSNorm", "LTX2RMSNorm"))
            out[norm_tap(n)] = (n, not full)
    return out
