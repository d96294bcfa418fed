"""Plotly figures of the lab's results, shaped for the notebooks (and usable by apps): pruning
criteria side by side, operator candidates per stage, and speed against quality. Each takes the plain
dicts the lab's functions return, so a figure can be redrawn from saved JSON. (The analysis figures,
shared with the main job's report and the compare app, are ``lab.analysis.figures``; the profiler
chart is ``lab.ops.figures.profile_figure``.)"""

from __future__ import annotations

_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf"]


def _go():
    import plotly.graph_objects as go  # deferred: plotly, from the notebooks extra
    return go


def criteria_figure(rows: list[dict], metric: str = "psnr"):
    """Grouped bars: ``metric`` per criterion (colour) at each keep ratio (x)."""
    go = _go()
    fig = go.Figure()
    for i, crit in enumerate(dict.fromkeys(r["criterion"] for r in rows)):
        rs = [r for r in rows if r["criterion"] == crit]
        fig.add_trace(go.Bar(name=crit, x=[f'keep {r["keep"]:g}' for r in rs], y=[r[metric] for r in rs],
                             marker_color=_PALETTE[i % len(_PALETTE)],
                             text=[f"{r[metric]:.1f}" for r in rs], textposition="outside"))
    fig.update_layout(barmode="group", title=f"pruned student vs teacher: {metric} by selection criterion",
                      yaxis_title=f"{metric} (dB)" if metric == "psnr" else metric, height=400)
    return fig


def candidates_figure(search: dict):
    """Operator candidates per stage (``lab.ops.search.search_plan`` trials): stage latency against
    output error, one marker per (stage, operator); accepted candidates filled, rejected hollow."""
    go = _go()
    fig = go.Figure()
    ops = list(dict.fromkeys(t["operator"] for t in search["trials"]))
    for i, op in enumerate(ops):
        ts = [t for t in search["trials"] if t["operator"] == op]
        fig.add_trace(go.Scatter(
            x=[t["stage"] for t in ts], y=[1000 * t["stage_seconds"] for t in ts], mode="markers", name=op,
            marker=dict(size=[8 + 40 * min(1.0, t["rel_err"]) for t in ts], color=_PALETTE[i % len(_PALETTE)],
                        symbol=["circle" if t["accepted"] else "circle-open" for t in ts]),
            customdata=[[t["rel_err"], t["psnr_db"]] for t in ts],
            hovertemplate="%{x} " + op + ": %{y:.1f} ms, rel err %{customdata[0]:.3f}, "
                          "%{customdata[1]:.1f} dB<extra></extra>"))
    fig.update_layout(title="candidates per stage: stage time (marker size = output error; hollow = over budget)",
                      xaxis_title="stage", yaxis_title="stage time (ms)", height=420)
    return fig


def speed_quality_figure(rows: list[dict], x: str = "seconds", y: str = "psnr"):
    """Scatter of speed against quality, one labelled point per decoder (``rows``: dicts with
    'decoder', ``x`` and ``y``; optional 'decoder_params' sets the marker size)."""
    go = _go()
    params = [r.get("decoder_params") or 0 for r in rows]
    biggest = max(params) or 1
    fig = go.Figure(go.Scatter(
        x=[r[x] for r in rows], y=[r[y] for r in rows], mode="markers+text", text=[r["decoder"] for r in rows],
        textposition="top center", marker=dict(size=[12 + 30 * (p / biggest) ** 0.5 for p in params],
                                               color=[_PALETTE[i % len(_PALETTE)] for i in range(len(rows))])))
    fig.update_layout(title="speed vs quality (marker size ~ decoder parameters)", xaxis_title=x, yaxis_title=y,
                      height=420, showlegend=False)
    return fig
