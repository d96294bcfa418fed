"""Plotly figures of the main job's report: metrics and benchmark charts (the analysis figures are
lab.analysis.figures, shared with the notebooks and the compare app; the profile chart is
lab.ops.figures.profile_figure)."""

from __future__ import annotations

import plotly.graph_objects as go


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
