"""The shape-only tracer (lab.eval.trace) and the ceilings it holds the fast paths to.

The ceilings are the fused runtime's traffic and launch counts at the real shape (480x832, 81 frames,
bf16), measured on the meta device, a little above what it measures today: a copy, a cat or a layout slip
in the fused path raises them long before a GPU sees it. Issue 29's targets: the Wan Flash-VAED student
<= 200 GB and <= 200 ops per latent frame (eager: about 500 GB, 460), wan2.1's exact fast path <= 1,200 GB
(eager: about 2,440 GB); and the LTX-Video student (eager about 71 GB, of which 40 in its folded norms).
cuDNN's separate bias adds are counted (``cudnn_bias_add``): 35 GB of the Wan student's traffic, 8 GB once the
fused runtime leaves the resnets' conv biases to the kernels that read their outputs next."""

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from lab.errors import LabError
from lab.eval.trace import TrafficMode, tensor_bytes, trace

GB = 1e9
#: ceilings: (bytes, ops per latent frame) of each fast path at 480x832x81 bf16
CEILINGS = {"wan2.1-flash@fused": (141 * GB, 150), "wan2.1@fused": (580 * GB, 150),
            "ltx-video-flash@fused": (13.5 * GB, 21), "wan2.1-flash@fused+subpixel": (128 * GB, 150),
            "wan2.2@fused": (510 * GB, 155), "ltx-2@fused": (56 * GB, 33), "ltx-2-flash@fused": (17.5 * GB, 33)}


def _count(fn):
    mode = TrafficMode()
    with mode:
        fn()
    return mode


def test_views_cost_nothing_and_ops_count_their_bytes():
    x = torch.empty(4, 8, device="meta")  # 128 bytes
    y = torch.empty(4, 8, device="meta")
    mode = _count(lambda: (x.t(), x[1:], x.view(32), x.unsqueeze(0), x.expand(2, 4, 8)))
    assert mode.ops == 0 and mode.bytes == 0
    mode = _count(lambda: x + y)
    assert (mode.ops, mode.bytes) == (1, 3 * 128)
    mode = _count(lambda: x.add_(y))  # reads both, writes x: counted once as the write
    assert (mode.ops, mode.bytes) == (1, 3 * 128)
    mode = _count(lambda: x.copy_(y))  # the destination is only written
    assert (mode.ops, mode.bytes) == (1, 2 * 128)
    b = torch.empty(1, 8, device="meta").expand(4, 8)  # a broadcast row is read once
    assert tensor_bytes(b) == 32
    mode = _count(lambda: torch.cat([x, y]))
    assert mode.bytes == 4 * 128
    mode = _count(lambda: x.contiguous() if False else x.t().contiguous())  # a layout change is a copy
    assert (mode.ops, mode.bytes) == (1, 2 * 128)


def test_a_conv_bias_is_added_by_a_kernel_of_its_own_as_cudnn_does():
    x = torch.empty(1, 8, 6, 6, device="meta").contiguous(memory_format=torch.channels_last)
    w = torch.empty(4, 8, 3, 3, device="meta")
    b = torch.empty(4, device="meta")
    out_bytes = 4 * 6 * 6 * 4
    plain = _count(lambda: F.conv2d(x, w, None, padding=1))
    assert dict(plain.by_op) == {"convolution": [1, tensor_bytes(x) + tensor_bytes(w) + out_bytes]}
    biased = _count(lambda: F.conv2d(x, w, b, padding=1))
    assert biased.by_op["cudnn_bias_add"] == [1, 2 * out_bytes + 16] and biased.ops == 2


def test_a_fused_custom_op_is_one_op_with_its_own_traffic():
    from lab.runtime.fused.ops import rms_norm_act
    x = torch.empty(1, 16, 3, 8, 8, device="meta", dtype=torch.bfloat16)
    buf = torch.empty(1, 16, 5, 8, 8, device="meta", dtype=torch.bfloat16)
    g = torch.empty(16, device="meta", dtype=torch.bfloat16)
    mode = _count(lambda: rms_norm_act(x, g, None, 4.0, out=buf[:, :, 2:]))
    assert dict(mode.by_op) == {"lab::rms_norm_act": [1, 2 * tensor_bytes(x) + tensor_bytes(g)]}


def test_depthwise_3d_convs_reach_cudnn_only_in_channels_last():
    x = torch.empty(1, 8, 4, 6, 6, device="meta", dtype=torch.bfloat16)
    w = torch.empty(8, 1, 3, 3, 3, device="meta", dtype=torch.bfloat16)
    ncdhw = _count(lambda: F.conv3d(x, w, None, padding=1, groups=8))
    assert dict(ncdhw.by_op) == {"conv_depthwise3d": [1, ncdhw.bytes]}
    x_last = x.contiguous(memory_format=torch.channels_last_3d)
    last = _count(lambda: F.conv3d(x_last, w, None, padding=1, groups=8))
    assert set(last.by_op) == {"convolution"} and last.bytes == ncdhw.bytes
    # not depthwise (a dense conv, or two input channels per group): cuDNN either way
    dense = _count(lambda: F.conv3d(x, torch.empty(8, 8, 3, 3, 3, device="meta", dtype=torch.bfloat16), None))
    grouped = _count(lambda: F.conv3d(x, torch.empty(4, 2, 3, 3, 3, device="meta", dtype=torch.bfloat16), None,
                                      groups=4))
    assert set(dense.by_op) == set(grouped.by_op) == {"convolution"}


def test_attention_counts_as_one_kernel():
    from lab.eval.trace import FusedAttention
    q = torch.empty(2, 1, 100, 32, device="meta", dtype=torch.bfloat16)
    mode = TrafficMode()
    attention = FusedAttention(mode)
    with mode, attention:
        out = F.scaled_dot_product_attention(q, q, q)
    assert out.shape == q.shape and mode.ops == 1 and mode.bytes == 4 * tensor_bytes(q)
    assert attention.macs == 2 * 100 * 100 * 64


@pytest.mark.slow
def test_fast_paths_stay_under_their_ceilings_at_480p():
    result = trace(["wan2.1-flash", *CEILINGS, "wan2.1", "ltx-video-flash", "wan2.2", "ltx-2", "ltx-2-flash"], frames=81,
                   size=(480, 832),
                   dtype="bf16", top=40)
    rows = {d["label"]: d for d in result["decoders"]}
    eager_student, eager_teacher = rows["wan2.1-flash"], rows["wan2.1"]
    # the tracer sees what eager moves (RUNTIME.md: 512 GB / 431 ops and 2,442 GB), so a ceiling means something
    assert eager_student["bytes_moved"] > 480 * GB and eager_student["ops_per_latent_frame"] > 420
    assert 2400 * GB < eager_teacher["bytes_moved"] < 2480 * GB
    # cuDNN adds each conv's bias in a kernel of its own (the output read and written once more): eager, one per
    # conv with a bias; fused, the resnets' convs leave theirs to norm2's kernel and the residual kernel, the time
    # convs theirs to the interleave (40 of them)
    assert rows["wan2.1-flash"]["by_op"]["cudnn_bias_add"]["ops"] == 817
    bias = rows["wan2.1-flash@fused"]["by_op"]["cudnn_bias_add"]
    assert bias["ops"] == 168 and bias["bytes"] < 5 * GB
    assert rows["wan2.1-flash@fused"]["by_op"]["lab::bias_residual_add"]["ops"] == 294
    for label, (max_bytes, max_ops) in CEILINGS.items():
        row = rows[label]
        assert row["bytes_moved"] <= max_bytes, (label, row["bytes_moved"] / GB, row["by_op"])
        assert row["ops_per_latent_frame"] <= max_ops, (label, row["ops_per_latent_frame"], row["by_op"])
        eager_macs = rows[label.split("@")[0]]["macs"]
        if "subpixel" in label:  # 16 instead of 36 MACs per output in the resample convs: 4.86 -> 4.06 T
            assert row["macs"] < 0.86 * eager_macs
        else:
            assert row["macs"] == eager_macs  # the same arithmetic, less traffic
        assert any(op.startswith("lab::") for op in row["by_op"])
        # every depthwise 3D conv of a fast path reaches cuDNN (channels-last), none ATen's slow native kernel
        assert row["native_depthwise3d_convs"] == 0, (label, row["by_op"].get("conv_depthwise3d"))
    assert eager_student["macs"] == pytest.approx(4.86e12, rel=0.01)
    assert "cat" not in rows["wan2.1-flash@fused"]["by_op"]  # no cache concatenation left in the Wan path
    # the sub-pixel resample convs never write the 4x-upsampled frames
    assert not {"_upsample_nearest_exact2d", "lab::interleave_upsample"} & set(rows["wan2.1-flash@fused+subpixel"]["by_op"])
    assert rows["ltx-video-flash"]["bytes_moved"] > 60 * GB  # eager: RUNTIME.md's 67.6 GB
    # eager, the students' depthwise convs are NCDHW: CUDA runs them without cuDNN (RUNTIME.md's main suspect)
    assert eager_student["native_depthwise3d_convs"] == 336 and rows["ltx-video-flash"]["native_depthwise3d_convs"] == 20
    assert rows["wan2.2"]["bytes_moved"] > 1900 * GB  # Wan 2.2 eager: 2,011 GB; fused 594 GB
    # LTX-2 eager: 132.9 GB, its norms, edge-frame cats and reflect pads; fused 53.3 GB, none of those in the resnets
    assert rows["ltx-2"]["bytes_moved"] > 125 * GB
    assert rows["ltx-2@fused"]["by_op"]["reflection_pad3d"]["ops"] == 5  # the upsamplers' and conv_in/out's only
    # the LTX-2 student's operators pad space with 'reflect' too: eager, F.pad hands its depthwise convs NCDHW
    # tensors (no cuDNN); fused, the padding is in the channels-last buffer (90.1 -> 16.6 GB)
    assert rows["ltx-2-flash"]["native_depthwise3d_convs"] == 20 and rows["ltx-2-flash"]["bytes_moved"] > 85 * GB


def test_trace_cli_json_form():
    proc = subprocess.run([sys.executable, "-m", "lab", "trace", "--decoders", "wan2.1-tiny,wan2.1-tiny@fused+chunk2",
                           "--frames", "9", "--size", "64x64", "--json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert [d["label"] for d in out["decoders"]] == ["wan2.1-tiny", "wan2.1-tiny@fused+chunk2"]
    for d in out["decoders"]:
        assert {"label", "aten_ops", "ops_per_latent_frame", "bytes_moved", "macs"} <= set(d)
        assert d["aten_ops"] > 0 and d["bytes_moved"] > 0 and d["macs"] > 0
    eager, fused = out["decoders"]
    assert fused["bytes_moved"] < eager["bytes_moved"] and fused["macs"] == eager["macs"]


def test_trace_refuses_what_it_cannot_trace():
    with pytest.raises(LabError, match="cannot time"):
        trace(["wan2.1-tiny@fast"], frames=9, size=(64, 64))
    with pytest.raises(LabError, match="torch.compile"):
        trace(["wan2.1-tiny@compile"], frames=9, size=(64, 64))
