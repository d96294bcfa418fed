"""The fused runtimes' convolutions (lab.runtime.fused.conv): a float32 3D conv on the CPU runs oneDNN, where
ATen's rule sends small ones to slow_conv3d; the result is F.conv3d's within float32 rounding, the gradients are
ATen's own, and everything else (bf16, the meta device that the trace uses, 2D convs) is F's own call. The
``OneDNNConv3d`` mode (what the training loop runs under on the CPU) routes eager modules' convs the same way."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lab.runtime.fused import set_fused
from lab.runtime.fused.conv import OneDNNConv3d, conv, module_conv, onednn_conv3d

CL3 = torch.channels_last_3d


def _rel(a, b) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, CL3])
@pytest.mark.parametrize("case", [
    dict(k=3, padding=(0, 1, 1)),                    # a causal conv over its padded buffer
    dict(k=3, padding=1, stride=(1, 2, 2)),          # strided
    dict(k=3, padding=(0, 1, 1), groups=8),          # depthwise (8 channels)
    dict(k=1, padding=0, bias=False),                # pointwise, no bias
])
def test_float32_3d_conv_runs_onednn_within_rounding(memory_format, case, aten_ops):
    torch.manual_seed(0)
    k, groups = case["k"], case.get("groups", 1)
    x = torch.randn(1, 8, 4, 12, 10).contiguous(memory_format=memory_format)
    w = torch.randn(16 if groups == 1 else 8, 8 // groups, k, k, k)
    b = torch.randn(w.shape[0]) if case.get("bias", True) else None
    args = (case.get("stride", 1), case["padding"], 1, groups)
    ref = F.conv3d(x, w, b, *args)
    out = conv(x, w, b, *args)
    assert out.shape == ref.shape and _rel(out, ref) < 1e-6
    ops = aten_ops(lambda: conv(x, w, b, *args))
    # ATen's own rule gives the dense ones of these small convs (N*C*D*H = 384, far below its 20480) to slow_conv3d
    assert "aten::mkldnn_convolution" in ops and "aten::slow_conv3d_forward" not in ops


def test_flop_counter_counts_the_onednn_conv_as_torchs():
    # lab bench's and lab profile's MACs (FlopCounterMode) of a fused decode
    from torch.utils.flop_counter import FlopCounterMode
    x, w = torch.randn(1, 8, 4, 6, 6), torch.randn(16, 4, 3, 3, 3)
    counts = []
    for f in (conv, F.conv3d):
        with FlopCounterMode(display=False) as counter:
            f(x, w, None, 1, (0, 1, 1), 1, 2)
        counts.append(counter.get_total_flops())
    assert counts[0] == counts[1] == 2 * 16 * 4 * 27 * 2 * 6 * 6


def test_the_smaller_operand_is_reordered(aten_ops):
    # channels-last frames with small weights stay channels-last; weights larger than the frames (a big decoder at
    # a small size) keep their layout and the frames are reordered instead, with the same result
    x = torch.randn(1, 8, 3, 16, 16).contiguous(memory_format=CL3)
    assert conv(x, torch.randn(8, 8, 3, 3, 3), None, 1, (0, 1, 1)).is_contiguous(memory_format=CL3)
    small = torch.randn(1, 64, 3, 2, 2).contiguous(memory_format=CL3)
    w = torch.randn(64, 64, 3, 3, 3)
    out = conv(small, w, None, 1, (0, 1, 1))
    assert out.is_contiguous() and _rel(out, F.conv3d(small, w, None, 1, (0, 1, 1))) < 1e-6
    ops = aten_ops(lambda: conv(small, w, None, 1, (0, 1, 1)))
    assert "aten::mkldnn_convolution" in ops


def test_gradients_are_atens_own(aten_ops):
    # oneDNN's forward, ATen's conv backward (the op's autograd formula calls convolution_backward): for the same
    # upstream gradient, the input, weight and bias gradients are F.conv3d's bit for bit
    torch.manual_seed(2)
    x = torch.randn(1, 8, 4, 10, 10, requires_grad=True)
    w, b = torch.randn(16, 8, 3, 3, 3, requires_grad=True), torch.randn(16, requires_grad=True)
    g = torch.randn(1, 16, 2, 10, 10)
    grads = []
    for f in (conv, F.conv3d):
        out = f(x, w, b, 1, (0, 1, 1))
        grads.append(torch.autograd.grad(out, (x, w, b), g))
    assert all(torch.equal(a, c) for a, c in zip(*grads))
    assert "aten::mkldnn_convolution" in aten_ops(lambda: conv(x, w, b, 1, (0, 1, 1)).sum().backward())


@pytest.mark.parametrize("why", ["bf16", "2d", "meta", "mkldnn off"])
@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")  # torch.backends.mkldnn.flags says it
def test_everything_else_is_torchs_own_call(why, aten_ops):
    x, w = torch.randn(1, 8, 3, 6, 6), torch.randn(8, 8, 3, 3, 3)
    if why == "bf16":
        x, w = x.bfloat16(), w.bfloat16()
    elif why == "2d":
        x, w = x[:, :, 0], w[:, :, 0]
    elif why == "meta":
        x, w = x.to("meta"), w.to("meta")
    f = F.conv3d if x.dim() == 5 else F.conv2d
    with torch.backends.mkldnn.flags(enabled=why != "mkldnn off"):
        out = conv(x, w, None, 1, 1)
        if why == "meta":
            assert out.shape == f(x, w, None, 1, 1).shape
            return
        assert torch.equal(out, f(x, w, None, 1, 1))
        if why == "mkldnn off":
            assert "aten::mkldnn_convolution" not in aten_ops(lambda: conv(x, w, None, 1, 1))


@pytest.mark.parametrize("padding_mode", ["zeros", "replicate", "reflect"])
def test_module_conv_is_the_modules_own_forward(padding_mode):
    torch.manual_seed(1)
    layer = nn.Conv3d(6, 10, 3, padding=(1, 1, 2), padding_mode=padding_mode)
    x = torch.randn(1, 6, 4, 7, 9)
    with torch.no_grad():
        ref = layer(x)
        assert _rel(module_conv(layer, x, layer.bias), ref) < 1e-6
        assert _rel(module_conv(layer, x, None), ref - layer.bias.view(1, -1, 1, 1, 1)) < 1e-5


def test_fused_wan_decode_runs_no_slow_conv3d(tiny_wan, aten_ops):
    """Every 3D conv of the fused Wan step goes through lab.runtime.fused.conv (was: most of a small clip's
    decode time in slow_conv3d, the fused teacher slower than eager below 128 px)."""
    z = torch.randn(1, 16, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = tiny_wan.decode(z)
        set_fused(tiny_wan)
        try:
            ops = aten_ops(lambda: tiny_wan.decode(z))
            out = tiny_wan.decode(z)
        finally:
            set_fused(tiny_wan, False)
    assert "aten::slow_conv3d_forward" not in ops and "aten::mkldnn_convolution" in ops
    assert (out - ref).abs().max() < 2e-5


def test_the_mode_runs_an_eager_modules_convs_with_its_hooks(tiny_wan, aten_ops):
    """Under OneDNNConv3d, diffusers' own eager decode runs every 3D conv with oneDNN (no slow_conv3d), within
    float32 rounding, and its forward hooks (the distillation's feature taps) still see every stage."""
    z = torch.randn(1, 16, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    seen = {"eager": [], "mode": []}
    key = "eager"
    stage = tiny_wan.vae.decoder.up_blocks[0]
    handle = stage.register_forward_hook(lambda m, i, o: seen[key].append(o.clone()))
    try:
        with torch.no_grad():
            ref = tiny_wan.decode(z)
            assert "aten::slow_conv3d_forward" in aten_ops(lambda: tiny_wan.decode(z))  # the test can fail
            key = "mode"
            with OneDNNConv3d():
                out = tiny_wan.decode(z)
                key = "profiled"
                seen[key] = []
                ops = aten_ops(lambda: tiny_wan.decode(z))
    finally:
        handle.remove()
    assert "aten::slow_conv3d_forward" not in ops and "aten::mkldnn_convolution" in ops
    assert (out - ref).abs().max() < 2e-5
    eager, mode = seen["eager"][:len(seen["mode"])], seen["mode"]
    assert mode and len(seen["eager"]) == 2 * len(mode)  # the hook fires as often, on the same stage outputs
    assert all((a - b).abs().max() < 2e-5 for a, b in zip(eager, mode))


def test_the_mode_is_the_cpus_only():
    assert isinstance(onednn_conv3d("cpu"), OneDNNConv3d)
    assert not isinstance(onednn_conv3d("cuda"), OneDNNConv3d)  # conv is F's own call there: nothing to gain
