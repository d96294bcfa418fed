"""Plotly figures of a cached channel analysis: per-stage independence heatmaps and explained-variance
curves, with a keep ratio marked. Channels are shown in the order the independence criterion picks
them (greedy least-squares selection), so "what a ratio keeps" is everything left of / above the line.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lab.analysis import ChannelAnalysis, greedy_select
from lab.analysis.linalg import residual_gram


@dataclass
class GroupView:
    """What the figures need of one channel group, computed once per analysis."""
    name: str
    stage: str
    width: int
    prunable: bool
    order: list[int]            # greedy selection order (the independence criterion's ranking)
    independence: list[float]   # per channel, in ``order``
    curve: list[float]          # explained variance by the best k channels, k = 0..width
    abs_corr: list[list[float]]  # |correlation|, rows and columns in ``order``

    def kept(self, ratio: float) -> int:
        return self.width if not self.prunable else max(1, round(ratio * self.width))


def group_views(analysis: ChannelAnalysis) -> dict[str, list[GroupView]]:
    """stage -> views of its groups that recorded anything (the analysis's stage order)."""
    out: dict[str, list[GroupView]] = {}
    for stage, reports in analysis.stage_report().items():
        for r in reports:
            gram = analysis.selection_gram(analysis.group(r["group"]))
            order, _ = greedy_select(gram)
            cov = residual_gram(gram)
            d = torch.sqrt(torch.diagonal(cov).clamp_min(1e-30))
            corr = (cov / torch.outer(d, d)).clamp(-1, 1).abs()[order][:, order]
            out.setdefault(stage, []).append(GroupView(
                name=r["group"], stage=stage, width=r["width"], prunable=r["prunable"], order=order,
                independence=[r["independence"][i] for i in order], curve=r["explained_variance"],
                abs_corr=corr.tolist()))
    return out


def stage_ratio(keep, stage: str) -> float:
    """The keep ratio that applies to ``stage``: a global float, or {stage: ratio} (absent: 1)."""
    if isinstance(keep, dict):
        return float(keep.get(stage, 1.0))
    return float(keep)


def independence_figure(views: dict[str, list[GroupView]], stage: str, keep):
    """Left: |correlation| of the stage's main group (its residual stream) in selection order, the kept
    block outlined. Right: independence of every channel of every group of the stage, in selection
    order, with each group's kept count marked."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    groups = _stage_groups(views, stage)
    main = next((g for g in groups if g.name.endswith(".stream")), groups[0])
    ratio = stage_ratio(keep, stage)
    prunable = any(g.prunable for g in groups)
    # Wide gap between the panels: the left colorbar sits in it, then the right panel's group names.
    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.3, subplot_titles=(
        f"|correlation|, {main.name} ({main.width} ch)", "independence per channel"))
    fig.add_trace(go.Heatmap(z=main.abs_corr, zmin=0, zmax=1, colorscale="Viridis", name=main.name,
                             colorbar=dict(title="|corr|", x=0.37, len=0.9, thickness=12),
                             hovertemplate="rank %{x} vs rank %{y}: |corr| %{z:.2f}<extra></extra>"), row=1, col=1)
    k = main.kept(ratio)
    if main.prunable and k < main.width:
        fig.add_shape(type="rect", x0=-0.5, y0=-0.5, x1=k - 0.5, y1=k - 0.5, line=dict(color="red", width=2),
                      row=1, col=1)
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    width = max(g.width for g in groups)
    rows = [g.independence + [None] * (width - g.width) for g in groups]
    names = [g.name for g in groups]
    fig.add_trace(go.Heatmap(z=rows, y=names, zmin=0, zmax=1, colorscale="Magma", name="independence",
                             colorbar=dict(title="indep.", x=1.0, len=0.9, thickness=12),
                             hovertemplate="%{y}, rank %{x}: independence %{z:.2f}<extra></extra>"), row=1, col=2)
    marks = [(g.kept(ratio) - 0.5, g.name) for g in groups if g.prunable and g.kept(ratio) < g.width]
    if marks:
        fig.add_trace(go.Scatter(x=[m[0] for m in marks], y=[m[1] for m in marks], mode="markers",
                                 marker=dict(symbol="line-ns", size=26, line=dict(color="red", width=3)),
                                 name="kept | dropped", hoverinfo="skip", showlegend=False), row=1, col=2)
    note = f"keep {ratio:g}" if prunable else "not prunable (full width)"
    fig.update_xaxes(title_text="channel, in selection order", row=1, col=1)
    fig.update_xaxes(title_text="channel, in selection order", row=1, col=2)
    fig.update_layout(title=f"{stage}: channel independence, {note} (red: kept | dropped)", height=440,
                      margin=dict(t=80, b=50, l=40, r=40))
    return fig


def explained_variance_figure(views: dict[str, list[GroupView]], stage: str, keep):
    """Explained variance of each of the stage's groups against the fraction of channels kept (greedy
    best k), with the chosen ratio drawn and each group's value at it marked."""
    import plotly.graph_objects as go

    ratio = stage_ratio(keep, stage)
    fig = go.Figure()
    for g in _stage_groups(views, stage):
        xs = [i / g.width for i in range(g.width + 1)]
        fig.add_trace(go.Scatter(x=xs, y=g.curve, mode="lines", name=g.name))
        k = g.kept(ratio)
        fig.add_trace(go.Scatter(x=[k / g.width], y=[g.curve[k]], mode="markers", showlegend=False,
                                 marker=dict(size=9, color="red"),
                                 hovertemplate=f"{g.name}: {k}/{g.width} ch explain %{{y:.1%}}<extra></extra>"))
    fig.add_vline(x=ratio, line=dict(color="red", dash="dash"), annotation_text=f"keep {ratio:g}")
    fig.update_layout(title=f"{stage}: variance explained by the best k channels", height=360,
                      xaxis_title="fraction of channels kept", yaxis_title="explained variance",
                      yaxis=dict(range=[0, 1.02]), xaxis=dict(range=[0, 1]), margin=dict(t=60, b=40))
    return fig


def _stage_groups(views: dict[str, list[GroupView]], stage: str) -> list[GroupView]:
    if stage not in views:
        from lab.errors import LabError
        raise LabError(f"the analysis recorded nothing for stage '{stage}'; stages with data: {', '.join(views)}")
    return views[stage]
