"""What analysis records for a set of channel groups (lab.arch.groups): the input of every consumer
layer, and the input of every norm over the groups' channels."""

from __future__ import annotations

from torch import nn

from lab.arch.groups import ChannelGroup, consumer_tap, norm_tap
from lab.plugins import load_families


#: RMS norm classes (by name) whose pruned forms fold the dropped channels' energy: analysis records a full
#: Gram of their input. Families add theirs with ``register_full_gram_norms``.
FULL_GRAM_NORMS: set[str] = {"RMSNorm"}


def register_full_gram_norms(*names: str) -> None:
    FULL_GRAM_NORMS.update(names)


def full_gram_norms() -> set[str]:
    load_families()
    return FULL_GRAM_NORMS


def taps(groups: list[ChannelGroup], root: nn.Module | None = None) -> dict[str, tuple[str, bool]]:
    """tap name -> (module path, diag_only). Consumers get a full Gram; RMS norms and LayerNorms get a
    full Gram when ``root`` is given (see lab.models.students.folded_norm and
    ChannelAnalysis.layernorm_affine), else second moments only."""
    out: dict[str, tuple[str, bool]] = {}
    for g in groups:
        for c in g.consumers:
            out[consumer_tap(c.path)] = (c.path, False)
        for n in g.norms:
            # LayerNorms (LTX's shortcut), RMS norms (diffusers' RMSNorm and each family's own, registered
            # by the family), whose pruned forms estimate the full channels' energy from the kept ones
            # (both need the off-diagonal terms).
            full = root is not None and (isinstance(root.get_submodule(n), nn.LayerNorm)
                                         or type(root.get_submodule(n)).__name__ in full_gram_norms())
            out[norm_tap(n)] = (n, not full)
    return out
