"""The guided notebooks run end to end (nbclient, a fresh python3 kernel, the first error fails the
test) at small sizes injected after their 'parameters' cell, and the helpers they call in
lab/notebook behave as the notebooks rely on."""

import nbformat
import pytest
import torch

from lab import paths
from lab.errors import ConfigError, LabError, VideoShapeError
from lab.notebook import NotebookParams, frames_figure, table_html, video_html
from lab.notebook.runner import INJECTED_TAG, execute_notebook, inject_parameters, parameters_cell_index

NOTEBOOKS_DIR = paths.REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb"))

# Smaller than the notebooks' defaults where a notebook's facts still hold at that size (02 keeps its
# calibration size: the least-squares folds need enough positions to beat random selection).
SMALL = {
    "00_tour.ipynb": {"frames": 5, "size": "32x32", "profile_repeats": 1},
    "01_channel_independence.ipynb": {"frames": 5, "size": "32x32"},
    "02_pruning.ipynb": {"ratios": [0.125, 0.5]},
    "03_operator_swap.ipynb": {"frames": 5, "size": "32x32", "repeats": 1},
    "04_distillation.ipynb": {"steps_per_phase": 2, "eval_every": 2},
    "05_lightweight_decoders.ipynb": {"train_steps": 2},
    "06_evaluation.ipynb": {"frames": 5, "size": "32x32", "calib_size": "64x64", "bench_repeats": 1,
                            "metrics": ["psnr", "ssim", "temporal"]},
}

needs_mini_wan = pytest.mark.skipif(not (paths.checkpoints_dir() / "mini-wan" / "config.json").exists(),
                                    reason="data/checkpoints/mini-wan is absent (trained weights; see its README)")


def test_every_notebook_is_stored_clean_and_parametrized():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOKS_DIR}"
    for name in NOTEBOOKS:
        nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{name} is stored with outputs"
        assert parameters_cell_index(nb) == nb.cells.index(code[0]), f"{name}: the first code cell must be 'parameters'"
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert "What this notebook teaches" in text and "What to try next" in text, name
        assert "setup(threads=threads)" in code[1].source, f"{name}: the cell after the parameters must pin threads"


@needs_mini_wan
@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_end_to_end(name, monkeypatch, tmp_path):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    params = dict(SMALL.get(name, {}))
    if "out_dir = None" in (NOTEBOOKS_DIR / name).read_text():
        params["out_dir"] = str(tmp_path / "out")  # runs and saved students go to pytest's tmp, not /tmp
    nb = execute_notebook(NOTEBOOKS_DIR / name, params, timeout=300)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert any(INJECTED_TAG in c.metadata.get("tags", []) for c in nb.cells) or not params
    if "out_dir" in params:
        assert any((tmp_path / "out").iterdir()), f"{name} wrote nothing to out_dir"


def test_inject_parameters_places_overrides_after_the_parameters_cell():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t"),
                nbformat.v4.new_code_cell("frames = 9", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print(frames)")]
    inject_parameters(nb, {"frames": 5, "size": "32x32"})
    assert nb.cells[2].metadata["tags"] == [INJECTED_TAG]
    assert nb.cells[2].source.splitlines()[1:] == ["frames = 5", "size = '32x32'"]
    inject_parameters(nb, {"frames": 3})  # replaces, never stacks
    assert sum(INJECTED_TAG in c.metadata.get("tags", []) for c in nb.cells) == 1
    with pytest.raises(LabError, match="plain values"):
        inject_parameters(nb, {"frames": object()})
    nb.cells[1].metadata["tags"] = []
    with pytest.raises(LabError, match="tagged 'parameters'"):
        inject_parameters(nb, {"frames": 5})


def test_execute_notebook_reports_the_failing_cell(tmp_path):
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("assert x == 2, 'x was not injected'")]
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, path)
    execute_notebook(path, {"x": 2}, timeout=60)
    with pytest.raises(CellExecutionError, match="x was not injected"):
        execute_notebook(path, {}, timeout=60)


def test_notebook_params_name_the_fix(tiny_wan):
    p = NotebookParams.check(tiny_wan, "wan2.1-tiny", 9, "64x32")
    assert p.latent_frames == 3 and p.latent_size == (8, 4) and p.size == (64, 32)
    with pytest.raises(ConfigError, match="frames = 9"):
        NotebookParams.check(tiny_wan, "wan2.1-tiny", 10, 64)
    with pytest.raises(ConfigError, match="size = '64x64'"):
        NotebookParams.check(tiny_wan, "wan2.1-tiny", 9, "70x64")


def test_video_html_embeds_an_mp4_and_frames_figure_lays_out_a_grid():
    a = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    b = torch.zeros(1, 3, 5, 16, 16)
    page = video_html([a, b], ["real", "decoded"])
    assert 'src="data:video/mp4;base64,' in page and "real | decoded" in page
    with pytest.raises(VideoShapeError, match="same height and width"):
        video_html([a, torch.zeros(1, 3, 5, 8, 8)])
    fig = frames_figure({"a": a, "b": b}, frames=[0, -1])
    assert len(fig.data) == 4 and fig.data[0].type == "image"
    with pytest.raises(VideoShapeError, match="outside"):
        frames_figure({"a": a}, frames=[5])
    assert "<td>1,234</td>" in table_html([{"n": 1234, "x": 0.5}])


def test_live_analysis_view_follows_analyze(tiny_wan):
    from lab.analysis import analyze
    from lab.notebook.live import LiveAnalysisView

    view = LiveAnalysisView("up1.stream")
    z = torch.randn(1, 16, 3, 4, 4)
    analyze(tiny_wan, z, subscribers=[view])
    assert [u["event"] for u in view.updates][-1] == "done"
    assert [u["step"] for u in view.updates if u["event"] == "step"] == [1, 2, 3][-len(view.updates) + 1:]
    width = tiny_wan.vae.decoder.up_blocks[1].resnets[-1].conv2.out_channels
    heat = view.figure.data[0].z
    assert len(heat) == width and all(0 <= v <= 1 for row in heat for v in row)
    assert "up1.stream" in view.figure.data[1].x and "done" in view.figure.layout.title.text


def test_live_loss_curves_grow_and_mark_phases():
    from lab.notebook.live import LiveLossCurves

    view = LiveLossCurves()
    for step, phase in [(1, "phase1"), (2, "phase1"), (3, "phase2")]:
        view({"step": step, "phase": phase, "losses": {"l1": 1.0 / step, "lpips": 0.5}})
    view({"event": "unrelated"})
    assert view.phases == [(1, "phase1"), (3, "phase2")]
    assert list(view.figure.data[0].y) == [1.0, 0.5, 1.0 / 3] and len(view.figure.data) == 2
    assert len(view.figure.layout.shapes) == 2


def test_causality_check_and_side_by_side_timing(tiny_wan):
    from lab.notebook.experiments import causality_check, time_side_by_side

    z = torch.randn(1, 16, 3, 3, 3)
    check = causality_check(tiny_wan, z)
    assert check["causal"] and check["frames_before"] == 5 and check["after_max_abs"] > 0
    with pytest.raises(LabError, match="after the first"):
        causality_check(tiny_wan, z, t=0)
    rows = time_side_by_side({"a": tiny_wan, "b": tiny_wan}, z, repeats=1, warmup=0)
    assert [r["decoder"] for r in rows] == ["a", "b"] and rows[0]["speedup"] == 1.0


class _LeakyDecoder:
    """A 'causal' decoder whose whole-clip decode lets frame 0 see the last latent frame: the check
    must catch it."""
    causal = True
    name = "leaky"

    class geometry:
        @staticmethod
        def frames_for(t):
            return 1 + 4 * (t - 1)

    def decode(self, z):
        frames = [(z[:, :, 0].mean() + z[:, :, -1].mean()) * torch.ones(1, 3, 1, 8, 8)]  # peeks at the last
        for t in range(1, z.shape[2]):
            frames.append(z[:, :, t].mean() * torch.ones(1, 3, 4, 8, 8))
        return torch.cat(frames, 2)

    def decode_stream(self, z):
        yield self.decode(z)


def test_causality_check_catches_a_decoder_that_looks_ahead():
    from lab.notebook.experiments import causality_check

    check = causality_check(_LeakyDecoder(), torch.randn(1, 16, 3, 2, 2))
    assert not check["causal"] and check["before_max_abs"] > 0


def test_small_distill_config_shrinks_the_recipe_but_keeps_it():
    from lab.notebook.experiments import small_distill_config

    cfg = small_distill_config("configs/distill/mini-wan-flash.toml", steps_per_phase=3, frames=5, size=32,
                               eval_every=2, clips=["bbb-128"])
    assert [ph.name for ph in cfg.phases] == ["align", "joint", "finetune"]
    assert all(ph.max_steps == 3 for ph in cfg.phases)
    assert (cfg.data.crop, cfg.data.frames, cfg.data.val_size, cfg.data.val_frames) == (32, 5, 32, 5)
    assert cfg.data.clips == ["bbb-128"] and cfg.data.val_clips == ["city"]
    # the recipe's 33-frame finetune window does not fit a 5-frame notebook run: that phase takes the run's windows
    assert [ph.frames for ph in cfg.phases] == [None, None, None]
    assert (cfg.eval_every, cfg.checkpoint_every, cfg.sample_every) == (2, 0, 0)
    assert cfg.student.keep == "flash-vaed"


def test_strip_outputs_cleans_an_executed_notebook(tmp_path):
    from lab.notebook.runner import strip_outputs

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1 + 1", execution_count=3,
                                     outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "2"},
                                                                     execution_count=3)])
    nb.cells = [cell]
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, path)
    assert strip_outputs(path) is True
    clean = nbformat.read(path, as_version=4).cells[0]
    assert clean.outputs == [] and clean.execution_count is None and clean.source == "1 + 1"
    assert strip_outputs(path) is False
