"""The compare demo (Gradio Blocks): pick a teacher and a clip, drag a keep ratio, see the student's
decode, timings, metrics and the channel-independence figures. Only wiring: everything it does is in
lab.compare.handlers. Run it with ``python -m lab app compare [--port N] [--host 127.0.0.1] [--models-dir DIR]
[--allow-downloads]``.

Anyone who can open the page can type into its fields, so they load only registered names and what lies
in the models folders the app was started with (lab.compare.access); the hub is offline unless started
with --allow-downloads. Gradio's analytics are off, its cache of uploads and outputs is swept while the
app runs and emptied when it stops (delete_cache), and the app's own temporary folder is removed then.

Named API endpoints (gradio_client: ``Client(url).predict(..., api_name="/decode")``):
/check_upload, /load, /figures, /decode.
"""

from __future__ import annotations

import inspect
import logging
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: no usage reports, no version check

import gradio as gr  # noqa: E402

from lab.compare import LIMITS, clip_choices, extra_decoders, handlers  # noqa: E402
from lab.compare.session import DIFF_GAIN, RUNTIMES, sweep_stale_tmpdirs  # noqa: E402
from lab.errors import LabError  # noqa: E402
from lab.ops.plan import plan_names  # noqa: E402
from lab.prune import CRITERIA  # noqa: E402

log = logging.getLogger("lab")
#: Gradio's cache (uploads, the videos it serves): every 15 min, delete files older than an hour
DELETE_CACHE = (900, 3600)


def _ui_errors(fn):
    """LabError -> gr.Error: the message shows in the page, the app keeps serving. The wrapper carries
    the handler's signature (so API parameters keep their names) with ``progress`` a gr.Progress."""
    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values() if p.name != "progress"]
    ui_sig = sig.replace(parameters=params + [inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                                  default=gr.Progress())])

    def wrapper(*args, **kwargs):
        bound = ui_sig.bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        progress = values.pop("progress")
        try:
            return fn(**values, progress=lambda f, desc: progress(f, desc=desc))
        except LabError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
    wrapper.__name__ = wrapper.__qualname__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    wrapper.__signature__ = ui_sig
    return wrapper


def _plain_errors(fn):
    def wrapper(*args):
        try:
            return fn(*args)
        except LabError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
    wrapper.__name__ = wrapper.__qualname__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    wrapper.__signature__ = inspect.signature(fn)
    return wrapper


def _load(teacher, weights, clip, upload, frames, short_side, keep, per_stage, stage, criterion, progress):
    info, stages, pick, heat, curve, extras, caption = handlers.load(
        teacher, weights, clip, upload, frames, short_side, keep, per_stage, stage, criterion, progress=progress)
    return info, gr.Dropdown(choices=stages, value=pick), heat, curve, gr.Dropdown(choices=extras, value=[]), caption


load = _ui_errors(_load)


figures = _ui_errors(handlers.figures)
decode = _ui_errors(handlers.decode)
check_upload = _plain_errors(handlers.check_upload)


def build() -> gr.Blocks:
    with gr.Blocks(title="VAED Lab: compare decoders", analytics_enabled=False, delete_cache=DELETE_CACHE) as demo:
        gr.Markdown("# VAED Lab: compare video VAE decoders\nDrag the keep ratio: the student is rebuilt from the "
                    "cached channel analysis and decoded again. " + handlers.device_markdown(), elem_id="device")
        with gr.Row():
            with gr.Column(scale=1):
                teacher = gr.Dropdown(handlers.teacher_choices(), value="mini-wan", allow_custom_value=True,
                                      label="teacher (a registered name or a folder under the app's models folders)",
                                      elem_id="teacher")
                weights = gr.Textbox(label="weights (a folder or checkpoint file under the app's models folders, "
                                           "'random', or a hub id if the app allows downloads; empty: default)",
                                     elem_id="weights")
                clip = gr.Dropdown(clip_choices(), value="bbb-128", label="clip", elem_id="clip")
                upload = gr.File(label=f"or upload a clip ({LIMITS.describe()})", type="filepath",
                                 elem_id="upload")
                upload_msg = gr.Markdown(elem_id="upload-msg")
                frames = gr.Slider(1, LIMITS.max_frames, value=9, step=1, label="frames (cut to 1 + 4k for Wan)")
                short_side = gr.Slider(32, LIMITS.max_short_side, value=64, step=32, label="short side (px)")
                load_btn = gr.Button("Load and analyse", variant="secondary", elem_id="load")
            with gr.Column(scale=2):
                info = gr.Markdown(elem_id="info", label="session")
                with gr.Row():
                    keep = gr.Slider(0.05, 1.0, value=0.5, step=0.05, label="keep ratio (all prunable stages)",
                                     elem_id="keep")
                    per_stage = gr.Textbox(label="per-stage ratios (override), e.g. up2=0.125,up3=0.25",
                                           elem_id="per-stage")
                with gr.Row():
                    criterion = gr.Dropdown(list(CRITERIA), value="independence", label="criterion")
                    operators = gr.Dropdown(plan_names(), value="keep", allow_custom_value=True,
                                            label="operator swap (plan or STAGE=OP,...)", elem_id="operators",
                                            info="a swap (flash-vaed, ...) is shown untrained: its new operators "
                                                 "start from the layers they replace and need distillation "
                                                 "(python -m lab distill)")
                with gr.Row():
                    decoders = gr.CheckboxGroup(handlers.DEFAULT_DECODERS, value=handlers.DEFAULT_DECODERS,
                                                label="decoders")
                    extras = gr.Dropdown(extra_decoders(), value=[], multiselect=True,
                                         label="registered decoders (lightweight, students) of this teacher's latents")
                    saved = gr.Textbox(label="saved students (folders under the app's models folders, "
                                             "comma-separated)")
                    # eager by default: every speedup here divides by the eager teacher, so the first rows show
                    # what pruning and operator swaps give on their own; fused adds the runtime on top (at the
                    # default 9 frames of 64 px on a CPU, mini-wan@fused is 3.3x eager), as lab decode does
                    runtime = gr.Dropdown(list(RUNTIMES), value="eager", label="runtime", elem_id="runtime",
                                          info="fused: the lab's fused kernels and copy-free caches (same output "
                                               "within a rounding); +subpixel: upsample + conv as one conv. "
                                               "Speedups stay against the eager teacher.")
                    vmaf = gr.Checkbox(False, label="VMAF (slow)")
                    memory = gr.Checkbox(False, label="CPU peak memory (a fresh process per decoder: slow; "
                                                      "on a GPU it is always measured)")
                compare_btn = gr.Button("Decode and compare", variant="primary", elem_id="compare")
        # The videos carry their labels in the picture's top rows: Gradio's label badge and download button
        # would sit on top of them, so the titles go above and the button goes.
        with gr.Row():
            with gr.Column():
                gr.Markdown("**Side by side** (synced): real | decoders")
                side = gr.Video(show_label=False, buttons=[], elem_id="side", autoplay=True, loop=True)
            with gr.Column():
                gr.Markdown(f"**Difference to the real clip**: |decoder - real| x{DIFF_GAIN:g} (black: equal)")
                diff = gr.Video(show_label=False, buttons=[], elem_id="diff", autoplay=True, loop=True)
        table = gr.Dataframe(headers=handlers.START_COLUMNS, label="per decoder", elem_id="table", wrap=True,
                             interactive=False)
        with gr.Accordion("all numbers (JSON)", open=False):
            rows = gr.JSON(label="rows")
        with gr.Row():
            stage = gr.Dropdown([], label="stage", elem_id="stage", allow_custom_value=True)
        with gr.Row():
            heat = gr.Plot(label="channel independence", elem_id="heatmap", scale=3)
            curve = gr.Plot(label="explained variance", elem_id="curve", scale=2)
        caption = gr.Markdown(elem_id="caption")

        session = [teacher, weights, clip, upload, frames, short_side]
        ratios = [keep, per_stage]
        # A decode redraws the figures for the student it used (its ratios, its criterion's channels).
        decode_io = dict(fn=decode, outputs=[side, diff, table, rows, info, heat, curve, caption],
                         inputs=session + ratios + [criterion, operators, decoders, extras, saved, vmaf, memory,
                                                    stage, runtime])
        loaded = [info, stage, heat, curve, extras, caption]
        figure_io = dict(fn=figures, inputs=session + ratios + [stage, criterion], outputs=[heat, curve, caption])

        # The public endpoints first: an event's api_name defaults to its function's name, so the
        # private repeats below would otherwise take "decode" and push the public one to "decode_1"
        # (tests/apps/test_compare_app.py checks the names).
        compare_btn.click(**decode_io, api_name="decode")
        stage.input(**figure_io, api_name="figures")
        load_btn.click(load, session + ratios + [stage, criterion], loaded, api_name="load") \
            .then(**decode_io, api_visibility="private")
        checked = upload.upload(check_upload, upload, upload_msg, api_name="check_upload")
        # A refused file is dropped (its error stays on screen), so the clip choice applies again.
        checked.failure(lambda: None, None, upload, api_visibility="private")
        checked.success(load, session + ratios + [stage, criterion], loaded, api_visibility="private") \
            .success(**decode_io, api_visibility="private")
        keep.release(**figure_io, api_visibility="private").then(**decode_io, api_visibility="private")
        per_stage.submit(**figure_io, api_visibility="private").then(**decode_io, api_visibility="private")
        criterion.input(**figure_io, api_visibility="private")
        demo.load(load, session + ratios + [stage, criterion], loaded, api_visibility="private") \
            .then(**decode_io, api_visibility="private")
    return demo


#: Gradio sizes a table's columns on a hidden copy of its rows that never wraps: a long decoder label (a swapped
#: student under a runtime) would widen its column past the page. Wrapping there too, the columns share the width.
CSS = "#table .sizing-body td { white-space: normal !important; }"


def launch(host: str = "127.0.0.1", port: int | None = None, *, models_dirs=None, allow_downloads: bool = False,
           block: bool = True, **kwargs):
    """Queue (one job at a time: decodes share one CPU/GPU) and serve on ``host`` (loopback by default).
    ``models_dirs``: the folders the fields may load from (default: data/checkpoints and ./runs);
    ``allow_downloads``: let weights come from the hub. With ``block``, returns when the server stops,
    its temporary folders cleared."""
    for old in sweep_stale_tmpdirs():
        log.info("removed %s, left by a compare app that did not stop cleanly", old)
    access = handlers.configure(models_dirs, allow_downloads)
    log.info("compare app: %s", access.describe())
    demo = build()
    demo.queue(default_concurrency_limit=1, max_size=32)
    try:
        demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, ssr_mode=False, css=CSS,
                    max_file_size=LIMITS.max_bytes, allowed_paths=[str(handlers.CACHE.out_root)], **kwargs)
    finally:
        if block:
            demo.close()
            handlers.CACHE.close()
    return demo


if __name__ == "__main__":
    launch()
