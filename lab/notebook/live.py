"""Live plotly FigureWidgets that subscribe to the lab's hooks.

A view is a callable taking one event dict, so it plugs straight into
``lab.analysis.analyze(..., subscribers=[view])`` (and ``ChannelRecorder.subscribe``). Each event
updates the widget's traces in place; in JupyterLab the figure redraws while the clip streams. Headless
(nbclient in CI) the same updates happen on the Python side, and ``updates`` records what each event
changed so a notebook can assert that the view really followed the run.
"""

from __future__ import annotations

from lab.errors import LabError


def _figure_widget(fig):
    import plotly.graph_objects as go  # deferred: plotly, from the notebooks extra
    try:
        return go.FigureWidget(fig)
    except ImportError as exc:  # plotly >= 6 renders widgets through anywidget
        raise LabError(f"plotly FigureWidget needs the anywidget package ({exc}); install the notebook extras: "
                       f"pip install -e '.[notebooks]'") from None


class LiveAnalysisView:
    """While ``analyze`` streams latent frames: a heatmap of |channel correlation| in one channel group
    and a bar per group of its mean independence score, both recomputed from the partial statistics
    after every step (they settle as more frames are seen)."""

    def __init__(self, group: str, every: int = 1):
        from plotly.subplots import make_subplots  # deferred: plotly, from the notebooks extra
        import plotly.graph_objects as go  # deferred: plotly, from the notebooks extra

        if every < 1:
            raise LabError(f"every must be >= 1, got {every}")
        self.group, self.every = group, every
        fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55],
                            subplot_titles=(f"|correlation| in {group}", "mean independence per group"))
        fig.add_trace(go.Heatmap(z=[[0.0]], zmin=0, zmax=1, colorscale="Viridis", showscale=False), row=1, col=1)
        fig.add_trace(go.Bar(x=[], y=[], marker_color="#1f77b4"), row=1, col=2)
        fig.update_yaxes(autorange="reversed", row=1, col=1)
        fig.update_yaxes(range=[0, 1], row=1, col=2)
        fig.update_layout(title="waiting for the first latent frame...", height=380, showlegend=False)
        self.figure = _figure_widget(fig)
        self.updates: list[dict] = []

    def __call__(self, event: dict) -> None:
        if event.get("event") not in ("step", "done"):
            return
        if event["event"] == "step" and event["step"] % self.every and event["step"] != event["steps_total"]:
            return
        analysis = event["analysis"]
        try:
            report = analysis.group_report(self.group, matrices=True)
        except LabError:
            return  # this group's layers have not run yet (e.g. temporal upsamplers on frame 0)
        means = {}
        for g in analysis.groups:
            if any(analysis.consumer_gram(c.path) is not None for c in g.consumers):
                means[g.name] = float(analysis.group_report(g)["independence_mean"])
        with self.figure.batch_update():
            self.figure.data[0].z = [[abs(v) for v in row] for row in report["correlation"]]
            self.figure.data[1].x = list(means)
            self.figure.data[1].y = list(means.values())
            self.figure.layout.title = (f"{analysis.decoder_name}: step {event['step']}/{event['steps_total']}"
                                        + (" (done)" if event["event"] == "done" else ""))
        self.updates.append({"event": event["event"], "step": event["step"],
                             "independence_mean": report["independence_mean"]})


class LiveLossCurves:
    """Training curves that grow while a trainer runs: one line per loss term, against the step, with a
    vertical marker where each phase starts. Call it with events ``{'step': int, 'losses': {name:
    value}, 'phase': str}`` (``LiveDistillView`` makes them from a distillation run's callbacks)."""

    def __init__(self, title: str = "training losses", log_y: bool = True):
        import plotly.graph_objects as go  # deferred: plotly, from the notebooks extra

        fig = go.Figure()
        fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss", height=380,
                          yaxis_type="log" if log_y else "linear")
        self.figure = _figure_widget(fig)
        self.phases: list[tuple[int, str]] = []
        self.updates: list[dict] = []
        self._index: dict[str, int] = {}

    def __call__(self, event: dict) -> None:
        if "step" not in event or "losses" not in event:
            return
        step, phase = int(event["step"]), event.get("phase")
        with self.figure.batch_update():
            if phase is not None and (not self.phases or self.phases[-1][1] != phase):
                self.phases.append((step, str(phase)))
                # A shape + annotation in paper y-coordinates (add_vline needs existing axes/traces).
                self.figure.add_shape(type="line", x0=step, x1=step, xref="x", y0=0, y1=1, yref="paper",
                                      line=dict(dash="dot", color="#888"))
                self.figure.add_annotation(x=step, y=1, xref="x", yref="paper", text=str(phase),
                                           showarrow=False, xanchor="left", yanchor="bottom")
            for name, value in event["losses"].items():
                if name not in self._index:
                    self.figure.add_scatter(x=[], y=[], mode="lines", name=name)
                    self._index[name] = len(self.figure.data) - 1
                trace = self.figure.data[self._index[name]]
                trace.x = tuple(trace.x or ()) + (step,)
                trace.y = tuple(trace.y or ()) + (float(value),)
        self.updates.append({"step": step, "phase": phase, **{k: float(v) for k, v in event["losses"].items()}})


def distill_view(title: str = "distillation", log_y: bool = True):
    """A ``lab.distill`` callback that draws the run live: a ``LiveLossCurves`` of the ``train/...``
    losses with phase markers (``figure``) and the validation PSNR against the teacher after each eval
    (``val_figure``). Pass it as ``distill(config, out, callbacks=[view])``."""
    # deferred: importing lab.distill loads the whole trainer; only this view needs it
    from lab.training.hooks import Callback

    class LiveDistillView(Callback):
        def __init__(self):
            import plotly.graph_objects as go  # deferred: plotly, from the notebooks extra

            self.curves = LiveLossCurves(title=f"{title}: training losses", log_y=log_y)
            self.figure = self.curves.figure
            self.val_figure = _figure_widget(go.Figure(
                go.Scatter(x=[], y=[], mode="lines+markers", name="val PSNR vs teacher"),
                layout=dict(title=f"{title}: held-out PSNR vs teacher", xaxis_title="step", yaxis_title="dB",
                            height=320)))
            self.phase = None
            self.phase_changes: list[dict] = []
            self.evals: list[dict] = []
            self.final: dict | None = None

        def on_phase(self, step, old, new, reason):
            self.phase = new
            self.phase_changes.append({"step": step, "from": old, "to": new, "reason": reason})

        def on_step(self, state):
            # Loss terms only: per-stage feature terms and the gradient norm would crowd the chart (the run
            # store keeps them all).
            losses = {k.split("/", 1)[1]: v for k, v in state.scalars.items()
                      if k.startswith("train/") and isinstance(v, (int, float))
                      and not k.startswith("train/feat/") and k != "train/grad_norm"}
            self.curves({"step": state.step, "phase": state.phase_name, "losses": losses})

        def on_eval(self, step, metrics):
            self.evals.append({"step": step, **metrics})
            psnr = metrics.get("val/psnr_vs_teacher")
            if psnr is not None:
                trace = self.val_figure.data[0]
                trace.x = tuple(trace.x or ()) + (step,)
                trace.y = tuple(trace.y or ()) + (float(psnr),)

        def on_end(self, final):
            self.final = final

    return LiveDistillView()
