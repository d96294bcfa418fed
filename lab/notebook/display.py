"""Videos and frames inline in a notebook: an H.264 mp4 embedded as a data URI (plays in JupyterLab,
VS Code and exported HTML without a server), and a plotly grid of chosen frames for side-by-side
comparison (before/after, teacher/student)."""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path

import torch

from lab.data.video import side_by_side, to_frames, write_video
from lab.errors import VideoShapeError

#: Embedded videos are kept small so saved notebooks stay light; larger clips are downscaled.
MAX_EMBED_WIDTH = 768


def _as_video(v) -> torch.Tensor:
    if not torch.is_tensor(v) or v.ndim != 5 or v.shape[0] != 1 or v.shape[1] != 3:
        shape = tuple(v.shape) if torch.is_tensor(v) else type(v).__name__
        raise VideoShapeError(f"show one video as a (1, 3, T, H, W) tensor in [-1, 1], got {shape}")
    return v.detach().float().cpu()


def _fit_width(video: torch.Tensor) -> torch.Tensor:
    w = video.shape[-1]
    if w <= MAX_EMBED_WIDTH:
        return video
    scale = MAX_EMBED_WIDTH / w
    h2 = max(2, int(video.shape[-2] * scale) // 2 * 2)
    frames = video[0].permute(1, 0, 2, 3)  # T, 3, H, W
    frames = torch.nn.functional.interpolate(frames, size=(h2, MAX_EMBED_WIDTH), mode="bilinear",
                                             antialias=True, align_corners=False)
    return frames.permute(1, 0, 2, 3).unsqueeze(0)


def video_html(videos, labels=None, fps: float = 8.0, scale: int = 2) -> str:
    """HTML for one video, or several of the same shape shown side by side (left to right) with a
    caption naming each. ``scale`` enlarges small clips on screen (pixels stay sharp)."""
    videos = [videos] if torch.is_tensor(videos) else list(videos)
    if not videos:
        raise VideoShapeError("video_html needs at least one video")
    videos = [_as_video(v) for v in videos]
    labels = list(labels) if labels is not None else []
    if labels and len(labels) != len(videos):
        raise VideoShapeError(f"{len(labels)} labels for {len(videos)} videos")
    if len({tuple(v.shape[-2:]) for v in videos}) > 1:
        raise VideoShapeError(f"side-by-side videos need the same height and width, got "
                              f"{[tuple(v.shape[-2:]) for v in videos]}")
    combined = _fit_width(side_by_side(*videos))
    with tempfile.TemporaryDirectory() as tmp:
        path = write_video(Path(tmp) / "clip.mp4", combined, fps=fps)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
    h, w = combined.shape[-2:]
    caption = " | ".join(html.escape(str(s)) for s in labels)
    return (f'<figure style="margin:0"><video width="{w * scale}" height="{h * scale}" controls loop autoplay '
            f'muted playsinline style="image-rendering:pixelated" src="data:video/mp4;base64,{data}"></video>'
            + (f"<figcaption>{caption}</figcaption>" if caption else "") + "</figure>")


def show_video(videos, labels=None, fps: float = 8.0, scale: int = 2):
    """Display :func:`video_html` in the notebook (returns the IPython HTML object)."""
    from IPython.display import HTML, display  # deferred: IPython, from the notebooks extra

    out = HTML(video_html(videos, labels, fps=fps, scale=scale))
    display(out)
    return out


def frames_figure(videos: dict, frames=None, title: str = ""):
    """A plotly grid of still frames: one row per named video, one column per frame index (default:
    first, middle and last). All videos must have the same frame count and size."""
    import plotly.graph_objects as go  # deferred: plotly, from the notebooks extra
    from plotly.subplots import make_subplots  # deferred: plotly, from the notebooks extra

    if not videos:
        raise VideoShapeError("frames_figure needs at least one named video")
    arrays = {name: to_frames(_as_video(v)) for name, v in videos.items()}
    counts = {a.shape[0] for a in arrays.values()}
    if len(counts) > 1:
        raise VideoShapeError(f"videos have different frame counts {sorted(counts)}; trim them to one length")
    t = counts.pop()
    frames = [0, t // 2, t - 1] if frames is None else list(frames)
    bad = [f for f in frames if not -t <= f < t]
    if bad:
        raise VideoShapeError(f"frame index {bad} outside a {t}-frame clip")
    names = list(arrays)
    fig = make_subplots(rows=len(names), cols=len(frames), horizontal_spacing=0.01, vertical_spacing=0.04,
                        subplot_titles=[f"{n}, frame {f % t}" for n in names for f in frames])
    for r, name in enumerate(names, start=1):
        for c, f in enumerate(frames, start=1):
            fig.add_trace(go.Image(z=arrays[name][f]), row=r, col=c)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    h = arrays[names[0]].shape[1]
    fig.update_layout(title=title, height=max(220, min(280, 2 * h + 60) * len(names)),
                      margin=dict(l=10, r=10, t=60, b=10))
    fig.update_annotations(font_size=11)
    return fig


def table_html(rows: list[dict], columns: list[str] | None = None, digits: int = 3) -> str:
    """A small HTML table of dict rows (floats rounded), for metric and benchmark summaries."""
    if not rows:
        return "<p>(no rows)</p>"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))

    def cell(v):
        if isinstance(v, float):
            return f"{v:,.{digits}f}" if abs(v) < 1e4 else f"{v:,.0f}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def show_table(rows: list[dict], columns: list[str] | None = None, digits: int = 3):
    from IPython.display import HTML, display  # deferred: IPython, from the notebooks extra

    out = HTML(table_html(rows, columns, digits))
    display(out)
    return out
