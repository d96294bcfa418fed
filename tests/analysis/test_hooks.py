"""Real hooks on tiny configs of the real diffusers classes."""

import pytest
import torch

from lab.analysis import ChannelRecorder, analyze, channel_groups
from lab.arch.groups import consumer_tap
from lab.errors import LabError
from lab.runtime.fused.conv import OneDNNConv3d


@pytest.fixture(scope="module")
def wan_analysis(tiny_wan):
    z = torch.randn(1, 16, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    events = []
    partial = []

    def sub(e):
        events.append(e["event"])
        if e["event"] == "step":  # subscribers can read partial results while the analysis runs
            partial.append(e["analysis"].group_report("up3.stream")["independence_mean"])

    a = analyze(tiny_wan, z, subscribers=[sub], clip_names=["randn"])
    return a, z, events, partial


def test_streaming_analysis_publishes_progress_and_partial_results(wan_analysis, tiny_wan):
    a, z, events, partial = wan_analysis
    assert events == ["step", "step", "step", "done"]  # one step per latent frame
    assert len(partial) == 3 and all(0.0 <= p <= 1.0 for p in partial)
    # Hooks are gone afterwards.
    assert not any(m._forward_pre_hooks for m in tiny_wan.vae.modules())


def test_hook_gram_equals_the_gram_of_the_captured_tensor(wan_analysis, tiny_wan):
    a, z, _, _ = wan_analysis
    seen = []
    h = tiny_wan.vae.decoder.conv_out.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    try:
        with OneDNNConv3d():  # the analysis's own kernels (the gram of eager's activations differs in rounding)
            tiny_wan.decode(z)
    finally:
        h.remove()
    x = torch.cat(seen, dim=2)  # (1, C, 9 frames, 32, 32)
    flat = x.movedim(1, 0).reshape(x.shape[1], -1).double()
    st = a.stats[consumer_tap("decoder.conv_out")]
    assert st.count == 9 * 32 * 32
    assert torch.allclose(st.gram, flat @ flat.T, rtol=1e-5)


def test_reports_per_stage(wan_analysis):
    a, _, _, _ = wan_analysis
    stages = a.stage_report(matrices=True)
    assert {"up0", "up1", "up2", "up3"} <= set(stages)
    r = next(r for r in stages["up3"] if r["group"] == "up3.stream")
    assert len(r["independence"]) == r["width"] == 8
    assert len(r["explained_variance"]) == 9 and r["explained_variance"][-1] == pytest.approx(1.0)
    corr = torch.tensor(r["correlation"])
    assert corr.shape == (8, 8) and torch.allclose(torch.diagonal(corr), torch.ones(8, dtype=corr.dtype))
    summary = a.summary()
    assert summary["steps"] == 3 and {g["group"] for g in summary["groups"]} >= {"up2.stream", "up3.res0.hidden"}


def test_groups_are_inspectable(tiny_wan):
    groups = {g.name: g for g in channel_groups(tiny_wan)}
    s = groups["up2.stream"]
    assert s.width == 16 and s.prunable
    # The residual stream of up2 starts at up1's upsampler output and runs through up2's resnets.
    assert ("decoder.up_blocks.1.upsamplers.0.resample.1", "rows") in s.producers
    assert ("decoder.up_blocks.2.resnets.2.conv2", "rows") in s.producers
    assert ("decoder.up_blocks.1.upsamplers.0.time_conv", "rows_paired") in groups["up1.stream"].producers
    assert not groups["up0.stream"].prunable
    assert "decoder.norm_out" in groups["up3.stream"].norms


def test_analysis_runs_on_ltx(tiny_ltx):
    z = torch.randn(1, 128, 2, 2, 2, generator=torch.Generator().manual_seed(0))
    a = analyze(tiny_ltx, z)
    stages = a.stage_report()
    assert "up3" in stages and "mid" in stages
    assert all(0 <= r["independence_mean"] <= 1 for rs in stages.values() for r in rs)


def test_recorder_rejects_unknown_module(tiny_wan):
    with pytest.raises(LabError, match="does not have"):
        ChannelRecorder(tiny_wan.vae, {"x": ("decoder.up_blocks.9.resnets.0", False)})


def test_the_analysis_runs_its_3d_convs_with_onednn(tiny_wan, aten_ops):
    # The hooks see the same modules; only the kernel differs from ATen's choice (slow_conv3d at these sizes).
    z = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    ops = aten_ops(lambda: analyze(tiny_wan, z))
    assert "aten::mkldnn_convolution" in ops and "aten::slow_conv3d_forward" not in ops


def test_calibration_encodes_with_onednn(tiny_wan, aten_ops, bundled_clip_path):
    # the teacher's encoder on a small clip: ATen alone gives its 3D convs to slow_conv3d
    from lab.analysis import calibration_latents
    from lab.data.video import load_clip
    video = load_clip(bundled_clip_path, frames=5, size=(32, 32), frame_multiple=4, spatial_multiple=8)
    with torch.no_grad():
        assert "aten::slow_conv3d_forward" in aten_ops(lambda: tiny_wan.encode(video))  # the test can fail
        ops = aten_ops(lambda: calibration_latents(tiny_wan, ["bbb-128"], frames=5, size=(32, 32)))
    assert "aten::mkldnn_convolution" in ops and "aten::slow_conv3d_forward" not in ops
