"""Channel-selection criteria behind one interface: a criterion takes a CriterionContext (the group,
how many channels to keep, the teacher, the analysis) and returns the kept channel indices.

Add your own with ``register_criterion("name", fn)``; ``python -m lab prune --criterion name`` then
uses it. Built in: independence (greedy least-squares reconstruction of the whole map),
independence-out (the same greedy, minimising the consumers' output error of the fold instead of the
input residual: each dropped channel's residual weighted by the consumer weights that read it),
independence-jacobian (the same, weighted by the Jacobian of the *decoder output* instead of the
consumer's own weights: the first-order output error of the fold; needs ``analysis.add_sensitivity``,
which prune() runs when this criterion is chosen; -balanced counts every consumer equally), magnitude
(L1 norm of the producing filters), magnitude-l2, variance (activation variance), random.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from lab.analysis import ChannelAnalysis, ChannelGroup, greedy_select
from lab.errors import ConfigError
from lab.analysis.linalg import residual_gram, weighted_greedy_select


@dataclass
class CriterionContext:
    group: ChannelGroup
    k: int
    model: nn.Module  # the teacher's VAE (module paths of the group refer to it)
    analysis: ChannelAnalysis | None
    seed: int = 0

    def gram(self) -> torch.Tensor:
        if self.analysis is None:
            raise ConfigError(f"this criterion needs activation statistics for {self.group.name}; run it with "
                              f"calibration clips (prune(..., clips=...) or --clips).")
        return self.analysis.selection_gram(self.group)

    def producer_weights(self) -> list[torch.Tensor]:
        """Each producer's weight reshaped to (channels of this group, -1)."""
        out = []
        for path, role in self.group.producers:
            layer = self.model.get_submodule(path)
            layer = layer.conv if isinstance(getattr(layer, "conv", None), nn.Module) else layer  # LTX wraps its conv
            w = layer.weight.detach().to(torch.float64)
            w = w.reshape(w.shape[0], -1)
            if role == "rows_paired":  # two frames of the same channels: rows j and C + j
                c = w.shape[0] // 2
                w = torch.cat([w[:c], w[c:]], dim=1)
            elif role == "rows_d2s":  # depth-to-space: rows c*8 .. c*8+7 belong to channel c
                w = w.reshape(self.group.width, -1)
            out.append(w)
        return out


Criterion = Callable[[CriterionContext], list[int]]
#: name -> (function, needs activation statistics, one-line description)
CRITERIA: dict[str, tuple[Criterion, bool, str]] = {}
#: criteria that also need the output-sensitivity metrics (ChannelAnalysis.add_sensitivity)
NEEDS_SENSITIVITY: set[str] = set()
#: the least-squares (independence-aware) criteria, each measuring the fold's error in another metric;
#: prune(refine=...) lets the student choose between them per group
INDEPENDENCE_FAMILY = ("independence", "independence-out", "independence-jacobian", "independence-jacobian-balanced")


def register_criterion(name: str, fn: Criterion, needs_stats: bool = True, description: str = "",
                       needs_sensitivity: bool = False) -> None:
    if not callable(fn):
        raise ConfigError(f"criterion '{name}' must be a callable taking a CriterionContext")
    doc = (fn.__doc__ or "").strip()
    CRITERIA[name] = (fn, needs_stats or needs_sensitivity, description or (doc.splitlines()[0] if doc else name))
    if needs_sensitivity:
        NEEDS_SENSITIVITY.add(name)
    else:
        NEEDS_SENSITIVITY.discard(name)


def get_criterion(name: str) -> tuple[Criterion, bool, str]:
    if name not in CRITERIA:
        close = difflib.get_close_matches(name, list(CRITERIA), n=2)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown criterion '{name}'.{hint} Known: {', '.join(CRITERIA)}; add one with "
                          f"lab.prune.register_criterion(name, fn).")
    return CRITERIA[name]


def select(name: str, ctx: CriterionContext) -> list[int]:
    """Run a criterion and check what it returned (k distinct indices in range), sorted."""
    fn, _, _ = get_criterion(name)
    kept = [int(i) for i in fn(ctx)]
    if len(kept) != ctx.k or len(set(kept)) != ctx.k or min(kept) < 0 or max(kept) >= ctx.group.width:
        raise ConfigError(f"criterion '{name}' returned {len(kept)} indices for {ctx.group.name} (width "
                          f"{ctx.group.width}); it must return {ctx.k} distinct indices in [0, {ctx.group.width}).")
    return sorted(kept)


def _top(scores: torch.Tensor, k: int) -> list[int]:
    return torch.argsort(scores, descending=True, stable=True)[:k].tolist()


def independence(ctx: CriterionContext) -> list[int]:
    """Greedy forward selection of the channels that best reconstruct all channels by least squares."""
    return greedy_select(ctx.gram(), ctx.k)[0]


def independence_out(ctx: CriterionContext) -> list[int]:
    """Greedy selection minimising the consumers' output error of the fold (residual weighted by their weights)."""
    if ctx.analysis is None:
        ctx.gram()  # raises the usual "needs activation statistics" error
    grams, metrics = [], []
    for cons in ctx.group.consumers:
        g = ctx.analysis.consumer_gram(cons.path)
        if g is None:
            continue
        layer = ctx.model.get_submodule(cons.path)
        layer = layer.conv if isinstance(getattr(layer, "conv", None), nn.Module) else layer
        w = layer.weight.detach().to(torch.float64)
        taps = w.reshape(w.shape[0], w.shape[1], -1).permute(2, 0, 1)  # (taps, out, in)
        grams.append(g)
        metrics.append(torch.einsum("toi,toj->ij", taps, taps))
    if not grams:
        ctx.gram()  # raises: nothing recorded
    return weighted_greedy_select(grams, metrics, ctx.k)


def independence_jacobian(ctx: CriterionContext, balanced: bool = False) -> list[int]:
    """Greedy selection minimising the first-order decoder-output error of the fold (residual weighted by the output's Jacobian)."""
    if ctx.analysis is None:
        ctx.gram()  # raises the usual "needs activation statistics" error
    grams, metrics = [], []
    for cons in ctx.group.consumers:
        g, m = ctx.analysis.consumer_gram(cons.path), ctx.analysis.output_metric(cons.path)
        if g is not None and m is not None:
            grams.append(g)
            metrics.append(m)
    if not grams:
        raise ConfigError(f"independence-jacobian needs the output sensitivity of {ctx.group.name}'s consumers; "
                          f"run analysis.add_sensitivity(teacher, latents) first (prune() does it for you).")
    # Not normalised per consumer: the Jacobian already puts every consumer in output units.
    return weighted_greedy_select(grams, metrics, ctx.k, normalise=balanced)


def magnitude(ctx: CriterionContext) -> list[int]:
    """Largest L1 norm of the filters that produce each channel (summed over producers)."""
    return _top(sum(w.abs().sum(dim=1) for w in ctx.producer_weights()), ctx.k)


def magnitude_l2(ctx: CriterionContext) -> list[int]:
    """Largest L2 norm of the filters that produce each channel (over all producers)."""
    return _top(torch.sqrt(sum((w * w).sum(dim=1) for w in ctx.producer_weights())), ctx.k)


def variance(ctx: CriterionContext) -> list[int]:
    """Largest activation variance (as the group's consumers see it)."""
    return _top(torch.diagonal(residual_gram(ctx.gram())), ctx.k)


def random(ctx: CriterionContext) -> list[int]:
    """A seeded random subset (the baseline every other criterion must beat)."""
    g = torch.Generator().manual_seed(ctx.seed * 1_000_003 + sum(map(ord, ctx.group.name)))
    return torch.randperm(ctx.group.width, generator=g)[:ctx.k].tolist()


register_criterion("independence", independence, True)
register_criterion("independence-out", independence_out, True)
register_criterion("independence-jacobian", independence_jacobian, True, needs_sensitivity=True)
register_criterion("independence-jacobian-balanced", lambda ctx: independence_jacobian(ctx, balanced=True), True,
                   "independence-jacobian with every consumer of the group counted equally", needs_sensitivity=True)
register_criterion("magnitude", magnitude, False)
register_criterion("magnitude-l2", magnitude_l2, False)
register_criterion("variance", variance, True)
register_criterion("random", random, False)
