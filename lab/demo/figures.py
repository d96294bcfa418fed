"""Plotly figures of the main job's report: channel independence per stage, explained-variance
curves, metrics and benchmark charts (the profile chart is lab.ops.figures.profile_figure)."""

from __future__ import annotations

import plotly.graph_objects as go


def independence_heatmap(stage_report: dict[str, list[dict]]) -> go.Figure:
    """One row per channel group (stage/group), channels sorted from most to least independent; a row
    that stays bright is hard to prune, a row that falls off quickly has redundant channels."""
    rows = [r for reports in stage_report.values() for r in reports]
    width = max(len(r["independence"]) for r in rows)
    z = [sorted(r["independence"], reverse=True) + [None] * (width - len(r["independence"])) for r in rows]
    labels = [f"{r['group']} ({r['width']})" for r in rows]
    fig = go.Figure(go.Heatmap(z=z, y=labels, x=list(range(1, width + 1)), colorscale="Viridis", zmin=0, zmax=1,
                               colorbar={"title": "independence"}, hoverongaps=False))
    fig.update_layout(title="channel independence per group (channels sorted, most independent first)",
                      xaxis_title="channel rank", yaxis={"autorange": "reversed"},
                      height=max(320, 22 * len(rows) + 140))
    return fig


def explained_variance_figure(stage_report: dict[str, list[dict]], marks: dict[str, float] | None = None) -> go.Figure:
    """Fraction of each group's variance the best k channels explain, against k / width; ``marks``
    (stage -> keep ratio) draws the widths the plan keeps."""
    fig = go.Figure()
    for stage, reports in stage_report.items():
        for r in reports:
            curve = r["explained_variance"]
            n = len(curve) - 1
            fig.add_trace(go.Scatter(x=[k / n for k in range(n + 1)], y=curve, mode="lines", name=r["group"],
                                     legendgroup=stage))
    for stage, ratio in (marks or {}).items():
        fig.add_vline(x=ratio, line_dash="dot", annotation_text=f"{stage} keeps {ratio:g}")
    fig.update_layout(title="explained variance of the greedily chosen channels", xaxis_title="kept fraction of "
                      "channels", yaxis_title="explained variance", yaxis_range=[0, 1.02])
    return fig


def metrics_figure(rows: list[dict]) -> go.Figure:
    """PSNR of every decoder against the real clip and against the teacher's decode."""
    names = [r["decoder"] for r in rows]
    fig = go.Figure([
        go.Bar(name="vs real clip", x=names, y=[r["vs_clip"].get("psnr") for r in rows]),
        go.Bar(name="vs teacher decode", x=names, y=[r.get("vs_teacher", {}).get("psnr") for r in rows]),
    ])
    fig.update_layout(barmode="group", title="PSNR on the held-out clip (dB)", yaxis_title="PSNR (dB)")
    return fig


def bench_figure(bench: dict) -> go.Figure:
    rows = bench["decoders"]
    fig = go.Figure(go.Bar(x=[r["label"] for r in rows], y=[r["speedup"] for r in rows],
                           text=[f"{r['speedup']:.2f}x" for r in rows], textposition="outside"))
    fig.update_layout(title=f"decode speedup vs the teacher ({bench['device']}, {bench['frames']} frames at "
                            f"{bench['size'][0]}x{bench['size'][1]}, median of {bench['repeats']}, interleaved)",
                      yaxis_title="speedup (x)")
    return fig
