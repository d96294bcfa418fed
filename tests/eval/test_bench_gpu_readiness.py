"""What the first CUDA bench needs, checked on CPU: non-causal decoders take @fast/@chunkK as a no-op with a
note, the fp32 reference reports per-row PSNR, memory is the decode's own and weights are counted apart,
the CUDA flags are set and restored, and a missing CUDA names the torch build."""

import json
import math

import pytest
import torch

from lab.cli import main
from lab.errors import LabError
from lab.devices import check_device
from lab.eval.bench import bench, cuda_bench_flags, cuda_decode_memory, video_error

SMALL = dict(weights="random", frames=9, size=(32, 32), repeats=1, warmup=0, memory=False, macs=False)


def test_fast_and_chunk_are_noops_for_non_causal_decoders():
    r = bench(["ltx-video-tiny", "ltx-video-tiny@fast", "ltx-video-tiny@chunk4"], **SMALL)
    plain, fast, chunk = r["decoders"]
    assert "note" not in plain
    for row, part in ((fast, "@fast"), (chunk, "@chunk4")):
        assert row["chunk"] == 1 and row["max_abs_err"] == 0 and "chunk_seconds" not in row
        assert row["note"].startswith(f"{part} does nothing") and "no per-chunk causal loop" in row["note"]
    assert "no search" in fast["note"]


def test_fp32_reference_in_bf16(capsys):
    # Through the CLI with --json and the memory probe (a fresh process, ~20 s): the fields the GPU run reads.
    rc = main(["bench", "--decoders", "ltx-video-tiny", "--weights", "random", "--frames", "9",
               "--size", "32x32", "--repeats", "1", "--warmup", "0", "--dtype", "bf16", "--reference", "fp32",
               "--no-macs", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert rc == 0 and r["reference"] == "fp32" and r["dtype"] == "bf16"
    for row in r["decoders"]:
        for key in ("seconds", "fps", "speedup", "decode_mem_bytes", "weights_bytes", "psnr_vs_fp32"):
            assert key in row, key
        assert row["weights_bytes"] == 2 * row["decoder_params"]  # bf16, no buffers in these decoders
        assert 25 < row["psnr_vs_fp32"] < 100 and 0 < row["max_abs_err_vs_fp32"] < 1  # bf16 rounding, not garbage


def test_fp32_reference_in_fp32_is_exact_for_the_plain_decoder():
    r = bench(["wan2.1-tiny", "wan2.1-tiny@chunk2"], reference="fp32", **SMALL)
    plain, chunked = r["decoders"]
    assert plain["psnr_vs_fp32"] == math.inf and plain["max_abs_err_vs_fp32"] == 0
    assert chunked["psnr_vs_fp32"] > 90 and chunked["max_abs_err_vs_fp32"] < 2e-5
    assert plain["weights_bytes"] == 4 * plain["decoder_params"]
    with pytest.raises(LabError, match="--reference takes fp32"):
        bench(["wan2.1-tiny"], reference="fp16", **SMALL)


def test_video_error():
    x = torch.zeros(1, 3, 2, 4, 4)
    y = x.clone()
    assert video_error(x, y) == (math.inf, 0.0)
    y[0, 0, 0, 0, 0] = 0.5
    psnr, err = video_error(x.bfloat16(), y)
    assert err == 0.5 and psnr == pytest.approx(10 * math.log10(4 / (0.25 / 96)))


def test_missing_cuda_names_the_torch_build(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LabError, match=f"torch.version.cuda = {torch.version.cuda}"):
        check_device("cuda")
    rc = main(["bench", "--decoders", "wan2.1-tiny", "--device", "cuda:0", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert rc == 1 and "CUDA is not available" in r["error"] and "torch.version.cuda" in r["error"]
    assert check_device("cpu") == torch.device("cpu")


def test_cuda_flags_are_set_and_restored():
    saved = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with cuda_bench_flags(torch.device("cpu")):
        assert (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
                torch.backends.cudnn.allow_tf32) == saved
    with cuda_bench_flags(torch.device("cuda")):  # flags only: nothing runs on the device
        assert torch.backends.cudnn.benchmark
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32) == saved


def test_cuda_decode_memory_is_the_decodes_own(monkeypatch):
    # A fake allocator: 1000 bytes resident (other models, caches) before the decode, which peaks at 1600.
    state = {"allocated": 1000, "peak": 5000}

    class Dec:
        def decode(self, z):
            state["peak"] = max(state["peak"], 1600)
            return z

    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: state["allocated"])
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats",
                        lambda device=None: state.update(peak=state["allocated"]))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: state["peak"])
    m = cuda_decode_memory(Dec(), torch.zeros(1))
    assert m == {"peak_mem_bytes": 1600, "decode_mem_bytes": 600, "allocated_before_decode": 1000}


def test_a_decoder_that_cannot_run_is_an_error_row_not_a_lost_bench(monkeypatch, capsys):
    """A device run has minutes for its bench: a runtime that fails there (a CUDA graph capture, a kernel build)
    costs its own row, not the eager rows beside it."""
    import lab.eval.bench as bench_module
    real = bench_module.load_for_bench

    def load(spec, weights, device, dtype):
        dec = real(spec, weights, device, dtype)
        if spec.endswith("@fused"):
            def broken(z):
                raise RuntimeError("operation not permitted when stream is capturing\nmore detail")
            dec.decode = broken
        return dec

    monkeypatch.setattr(bench_module, "load_for_bench", load)
    torch.manual_seed(0)
    r = bench(["wan2.1-tiny@fused", "wan2.1-tiny", "ltx-video-tiny"], frames=9, size=(32, 32), repeats=1,
              warmup=0, memory=False, macs=False)
    failed, eager, ltx = r["decoders"]
    assert failed == {"decoder": "wan2.1-tiny@fused",
                      "error": "RuntimeError: operation not permitted when stream is capturing"}
    # D1 failed: the speedups are against the first decoder that ran, and say so
    assert eager["speedup"] == 1.0 and eager["speedup_vs"] == "wan2.1-tiny" and ltx["seconds"] > 0
    with pytest.raises(LabError, match="every decoder failed"):
        bench(["wan2.1-tiny@fused"], frames=5, size=(32, 32), repeats=1, warmup=0, memory=False, macs=False)
    # the command line shows the failure as a line of its own
    assert main(["bench", "--decoders", "wan2.1-tiny,wan2.1-tiny@fused", "--frames", "5", "--size", "32x32",
                 "--repeats", "1", "--warmup", "0", "--no-memory", "--no-macs"]) == 0
    assert "wan2.1-tiny@fused: failed: RuntimeError: operation not permitted" in capsys.readouterr().out
