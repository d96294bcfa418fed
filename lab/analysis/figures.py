"""Plotly figures of a channel analysis, the one set the main job's report, the notebooks and the compare
app all draw. Each takes the plain dicts ``ChannelAnalysis.stage_report()`` / ``group_report()`` return
(so a figure can be redrawn from saved JSON), and, where a keep ratio is given (a float, or {stage:
ratio}; absent stages keep everything), marks what it keeps.

Channels are shown in the order the independence criterion picks them (greedy least-squares selection,
``selection_order`` in a report), so "what a ratio keeps" is everything left of / above the red mark.
"""

from __future__ import annotations

from lab.errors import LabError


def _go():
    import plotly.graph_objects as go  # deferred: plotly takes a second to import, and only figures need it
    return go


def stage_ratio(keep, stage: str) -> float:
    """The keep ratio that applies to ``stage``: a global float, or {stage: ratio} (absent: 1)."""
    if keep is None:
        return 1.0
    if isinstance(keep, dict):
        return float(keep.get(stage, 1.0))
    return float(keep)


def kept_count(report: dict, ratio: float) -> int:
    """Channels a group keeps at ``ratio``: round(ratio * width), at least 1; all of an unprunable group."""
    return report["width"] if not report["prunable"] else max(1, round(ratio * report["width"]))


def _reports(stage_report: dict, stage: str | None = None, groups: list[str] | None = None) -> list[dict]:
    if stage is not None and stage not in stage_report:
        raise LabError(f"the analysis recorded nothing for stage '{stage}'; stages with data: "
                       f"{', '.join(stage_report) or 'none'}")
    rows = [r for s, reports in stage_report.items() if stage is None or s == stage for r in reports
            if groups is None or r["group"] in groups]
    if not rows:
        raise LabError("the stage report is empty: analyze() recorded nothing (stream more latent frames)")
    return rows


def _in_selection_order(report: dict, values: list) -> list:
    order = report.get("selection_order") or sorted(range(len(values)), key=lambda i: -values[i])
    return [values[i] for i in order]


def explained_variance_figure(stage_report: dict, *, stage: str | None = None, groups: list[str] | None = None,
                              keep=None):
    """Explained variance against the fraction of channels kept (greedy best k), one line per channel
    group (of ``stage``, or of ``groups``, or all). A curve that rises steeply means few channels carry
    the signal: the rest are nearly linear combinations of them and can be pruned with little loss.
    With ``keep``, each stage's ratio is drawn and each group's value at it marked."""
    go = _go()
    fig = go.Figure()
    for r in _reports(stage_report, stage, groups):
        curve = r["explained_variance"]
        fig.add_trace(go.Scatter(x=[k / r["width"] for k in range(len(curve))], y=curve, mode="lines",
                                 name=r["group"], legendgroup=r["stage"],
                                 hovertemplate=f"{r['group']} ({r['width']} ch): %{{y:.1%}}<extra></extra>"))
        if keep is not None:
            k = kept_count(r, stage_ratio(keep, r["stage"]))
            fig.add_trace(go.Scatter(x=[k / r["width"]], y=[curve[k]], mode="markers", showlegend=False,
                                     marker=dict(size=9, color="red"),
                                     hovertemplate=f"{r['group']}: {k}/{r['width']} ch explain %{{y:.1%}}<extra></extra>"))
    stages = [stage] if stage is not None else list(stage_report)
    ratios = sorted({stage_ratio(keep, s) for s in stages} - {1.0}) if keep is not None else []
    for ratio in ratios:
        fig.add_vline(x=ratio, line=dict(color="red", dash="dash"), annotation_text=f"keep {ratio:g}")
    title = f"{stage}: " if stage else ""
    fig.update_layout(title=f"{title}variance explained by the best k channels", xaxis_title="fraction of channels kept",
                      yaxis_title="explained variance", yaxis=dict(range=[0, 1.02]), xaxis=dict(range=[0, 1]),
                      height=400, margin=dict(t=60, b=40))
    return fig


def _independence_trace(go, rows: list[dict], **colorbar):
    width = max(r["width"] for r in rows)
    z = [_in_selection_order(r, r["independence"]) + [None] * (width - r["width"]) for r in rows]
    return go.Heatmap(z=z, y=[f"{r['group']} ({r['width']})" for r in rows], x=list(range(width)), zmin=0, zmax=1,
                      colorscale="Magma", hoverongaps=False, colorbar=dict(title="indep.", **colorbar),
                      hovertemplate="%{y}, rank %{x}: independence %{z:.2f}<extra></extra>")


def _kept_marks(go, rows: list[dict], keep):
    marks = [(kept_count(r, stage_ratio(keep, r["stage"])) - 0.5, f"{r['group']} ({r['width']})") for r in rows]
    marks = [(x, y) for (x, y), r in zip(marks, rows) if r["prunable"] and x + 0.5 < r["width"]]
    if not marks:
        return None
    return go.Scatter(x=[m[0] for m in marks], y=[m[1] for m in marks], mode="markers", showlegend=False,
                      marker=dict(symbol="line-ns", size=22, line=dict(color="red", width=3)), hoverinfo="skip")


def independence_figure(stage_report: dict, *, stage: str | None = None, keep=None):
    """One row per channel group, its channels' independence (1 - R^2 of predicting a channel from the
    others of its group) in selection order: a row that stays bright is hard to prune, one that falls
    off quickly has redundant channels. With ``keep``, each group's kept | dropped boundary in red."""
    go = _go()
    rows = _reports(stage_report, stage)
    fig = go.Figure(_independence_trace(go, rows))
    if keep is not None and (marks := _kept_marks(go, rows, keep)) is not None:
        fig.add_trace(marks)
    fig.update_layout(title=("" if stage is None else f"{stage}: ") + "channel independence per group "
                      "(channels in selection order)", xaxis_title="channel, in selection order",
                      yaxis={"autorange": "reversed"}, height=max(320, 22 * len(rows) + 140))
    return fig


def _correlation_trace(go, report: dict, **colorbar):
    if "correlation" not in report:
        raise LabError("this report has no correlation matrix; make it with group_report(..., matrices=True) "
                       "or stage_report(matrices=True)")
    order = report.get("selection_order") or list(range(report["width"]))
    corr = report["correlation"]
    z = [[abs(corr[i][j]) for j in order] for i in order]
    return go.Heatmap(z=z, zmin=0, zmax=1, colorscale="Viridis", colorbar=dict(title="|corr|", **colorbar),
                      hovertemplate="rank %{x} vs rank %{y}: |corr| %{z:.2f}<extra></extra>")


def _kept_block(report: dict, ratio: float) -> dict | None:
    k = kept_count(report, ratio)
    if not report["prunable"] or k >= report["width"]:
        return None
    return dict(type="rect", x0=-0.5, y0=-0.5, x1=k - 0.5, y1=k - 0.5, line=dict(color="red", width=2))


def correlation_figure(report: dict, keep=None):
    """|correlation| between the channels of one group (a report made with matrices=True), rows and
    columns in selection order; bright off-diagonal cells are channels that move together. With
    ``keep``, the kept block is outlined."""
    go = _go()
    fig = go.Figure(_correlation_trace(go, report))
    if keep is not None and (block := _kept_block(report, stage_ratio(keep, report["stage"]))) is not None:
        fig.add_shape(**block)
    fig.update_layout(title=f'|channel correlation| in {report["group"]} ({report["width"]} channels, selection order)',
                      xaxis_title="channel rank", yaxis_title="channel rank", height=420, width=500,
                      yaxis_autorange="reversed")
    return fig


def stage_figure(stage_report: dict, stage: str, keep):
    """The compare app's view of one stage: left, |correlation| of its main group (the residual stream)
    with the kept block outlined; right, the independence of every group of the stage with each kept |
    dropped boundary. ``stage_report`` must carry matrices (stage_report(matrices=True))."""
    go = _go()
    from plotly.subplots import make_subplots  # deferred: plotly, as in _go

    rows = _reports(stage_report, stage)
    main = next((r for r in rows if r["group"].endswith(".stream")), rows[0])
    ratio = stage_ratio(keep, stage)
    # Wide gap between the panels: the left colorbar sits in it, then the right panel's group names.
    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.3, subplot_titles=(
        f"|correlation|, {main['group']} ({main['width']} ch)", "independence per channel"))
    fig.add_trace(_correlation_trace(go, main, x=0.37, len=0.9, thickness=12), row=1, col=1)
    if (block := _kept_block(main, ratio)) is not None:
        fig.add_shape(**block, row=1, col=1)
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    fig.add_trace(_independence_trace(go, rows, x=1.0, len=0.9, thickness=12), row=1, col=2)
    if (marks := _kept_marks(go, rows, {stage: ratio})) is not None:
        fig.add_trace(marks, row=1, col=2)
    note = f"keep {ratio:g}" if any(r["prunable"] for r in rows) else "not prunable (full width)"
    fig.update_xaxes(title_text="channel, in selection order", row=1, col=1)
    fig.update_xaxes(title_text="channel, in selection order", row=1, col=2)
    fig.update_layout(title=f"{stage}: channel independence, {note} (red: kept | dropped)", height=440,
                      margin=dict(t=80, b=50, l=40, r=40))
    return fig
