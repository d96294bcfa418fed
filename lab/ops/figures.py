"""Plotly figures and plain tables of a profile (what notebooks and apps plot)."""

from __future__ import annotations


def profile_rows(result: dict) -> list[dict]:
    """Long-format rows: one per (stage, operator type) with latency and MAC shares of the whole
    decoder, ready for a DataFrame or a stacked bar chart."""
    rows = []
    for s in result["stages"]:
        for o in s["ops"] or [{"type": "other", "latency_share_in_stage": 1.0, "mac_share_in_stage": 1.0,
                               "seconds": s["seconds"], "macs": s["macs"]}]:
            rows.append({"stage": s["stage"], "type": o["type"], "seconds": o["seconds"], "macs": o["macs"],
                         "latency_share": s["latency_share"] * o["latency_share_in_stage"],
                         "mac_share": s["mac_share"] * o["mac_share_in_stage"]})
    return rows


def profile_figure(result: dict):
    """Two stacked bar charts side by side: share of latency and share of MACs per stage, split by
    operator type."""
    import plotly.graph_objects as go  # deferred: plotly takes a second to import, and only figures need it
    from plotly.subplots import make_subplots  # deferred: plotly, as above

    rows = profile_rows(result)
    stages = [s["stage"] for s in result["stages"]]
    types = sorted({r["type"] for r in rows})
    fig = make_subplots(rows=1, cols=2, subplot_titles=("share of latency (%)", "share of MACs (%)"),
                        shared_yaxes=True)
    for i, t in enumerate(types):
        for col, key in ((1, "latency_share"), (2, "mac_share")):
            vals = {r["stage"]: 100 * r[key] for r in rows if r["type"] == t}
            fig.add_trace(go.Bar(name=t, x=stages, y=[vals.get(s, 0.0) for s in stages], legendgroup=t,
                                 showlegend=col == 1, marker_color=_COLORS[i % len(_COLORS)]), row=1, col=col)
    fig.update_layout(barmode="stack", title=f"{result['decoder']} on {result['device']}: "
                      f"latents {result['latents_shape']}", legend_title="operator type")
    return fig


_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78"]
