"""Shape-only trace of a decode: every aten op a decoder dispatches at full size, on the ``meta`` device.

Meta tensors carry shapes, dtypes and strides but no data, so a 480x832x81 decode of the full Wan 2.1
decoder is traced in seconds on any CPU, with no memory. What the trace counts (per decoder):

- ``aten_ops``: ops that launch work on a GPU. Views (``func.is_view``: slicing, permute, reshape into a
  view, expand) and allocations without data (``empty*``, ``_unsafe_view``, ``detach``, ``alias``) are
  not counted. Every other op is, including copies that a layout change triggers (``clone`` under
  ``contiguous()``), which is what makes the trace a guard: a stray ``cat``, ``pad`` or layout slip in a
  fast path shows up here long before a GPU sees it.
- ``bytes_moved``: input + output bytes of every counted op. An input is counted at the bytes it spans
  in memory (a broadcast, stride-0 dimension is read once). Outputs that alias an input (in-place ops,
  ``out=`` arguments) are counted once, as the write; arguments an op only writes (``out``, the
  destination of ``copy_``, ``fill_`` and ``zero_``) are not counted as reads. This is the traffic of
  ops that do not fuse anything: a lower bound for each op's own kernel, an upper bound for a fused one.
- ``macs``: matmul and convolution MACs (torch.utils.flop_counter; FLOPs / 2), as ``lab bench`` counts.
- a convolution with a bias counts as two ops, as cuDNN runs it: the convolution, then ``cudnn_bias_add``
  (cuDNN convolutions take no bias; ATen adds it in place afterwards, reading and writing the whole output
  once more: about a quarter of a fused Wan student's traffic and a launch per conv).
- attention (``F.scaled_dot_product_attention``) counts as one op reading q, k, v and writing its output,
  as the flash / memory-efficient kernels a GPU runs (``FusedAttention``), not the meta device's math.
- ``native_depthwise3d_convs``: depthwise 3D convs that CUDA would run with ATen's own ``conv_depthwise3d``
  kernel instead of cuDNN (their input and weight are NCDHW; ATen sends depthwise convs to cuDNN only in
  channels-last). They are listed under that name in ``by_op``: the slow kernel a layout slip brings back.
- ``by_op`` / ``by_stage``: bytes and op counts per aten op and per decoder stage (the family's stage map:
  conv_in, mid, up0.., head; ``outside`` is the per-frame loop, output assembly and clamping).

A fused kernel of the lab (lab.runtime.fused.ops) is a torch custom op with a fake implementation, so it
appears here as one op (``lab::...``) with its own reads and writes: the trace measures the GPU path.
The trace runs the runtime's CUDA layout (channels-last buffers) since it never runs a kernel.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import defaultdict
from contextlib import ExitStack

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from lab.arch import decoder_stages
from lab.devices import DTYPES
from lab.errors import LabError
from lab.models.interface import VideoDecoder
from lab.eval.bench import load_for_bench
from lab.runtime.spec import split_runtime

log = logging.getLogger("lab")

_aten = torch.ops.aten
#: ops that move no data and launch nothing (allocations and metadata changes that are not ``is_view``)
NO_DATA = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "_unsafe_view", "detach",
           "alias", "lift_fresh", "set_", "resize_", "_reshape_alias", "prim::device", "prim::layout"}
#: ops whose first (self) argument is only written, never read
WRITE_ONLY_SELF = {"copy_", "fill_", "zero_", "normal_", "uniform_", "random_", "bernoulli_"}


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes a tensor spans: its elements, with broadcast (stride-0) dimensions counted once."""
    n = 1
    for size, stride in zip(t.shape, t.stride()):
        if stride != 0:
            n *= size
    return n * t.element_size() if t.numel() else 0


def _op_name(func) -> str:
    ns = func.namespace
    name = func._schema.name.split("::", 1)[-1]
    return name if ns == "aten" else f"{ns}::{name}"


class TrafficMode(TorchDispatchMode):
    """Counts ops and bytes per op name and per stage (``self.stage`` is set by the caller's hooks)."""

    def __init__(self):
        super().__init__()
        self.stage = "outside"
        self.ops = 0
        self.bytes = 0
        self.by_op: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # name -> [ops, bytes]
        self.by_stage: dict[str, list[int]] = defaultdict(lambda: [0, 0])

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = _op_name(func)
        if name == "convolution":
            out = _cudnn_layout(out, args[0], args[1])
            if _native_depthwise3d(args[0], args[1], args[8] if len(args) > 8 else 1):
                name = "conv_depthwise3d"
        if func.is_view or name in NO_DATA:
            return out
        written = self._written(func, args, kwargs, name)
        read = 0
        for arg, value in self._arguments(func, args, kwargs):
            for t in tree_flatten(value)[0]:
                if isinstance(t, torch.Tensor) and arg not in written.get("write_only", ()):
                    read += tensor_bytes(t)
        wrote = 0
        for value in written.get("args", []):
            wrote += sum(tensor_bytes(t) for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor))
        # An in-place or out= op returns its written argument itself: counted once, as the write.
        aliased = {id(t) for v in written.get("args", []) for t in tree_flatten(v)[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and id(t) not in aliased:
                wrote += tensor_bytes(t)
        self.record(name, read + wrote)
        if name in ("convolution", "conv_depthwise3d") and len(args) > 2 and args[2] is not None:
            # ATen's cuDNN path: output.add_(bias) after the convolution (aten/src/ATen/native/Convolution.cpp)
            self.record("cudnn_bias_add", 2 * tensor_bytes(out) + tensor_bytes(args[2]))
        return out

    def record(self, name: str, moved: int) -> None:
        self.ops += 1
        self.bytes += moved
        for table, key in ((self.by_op, name), (self.by_stage, self.stage)):
            table[key][0] += 1
            table[key][1] += moved

    @staticmethod
    def _arguments(func, args, kwargs):
        schema = func._schema.arguments
        for i, value in enumerate(args):
            yield (schema[i].name if i < len(schema) else f"arg{i}"), value
        yield from kwargs.items()

    @staticmethod
    def _written(func, args, kwargs, name) -> dict:
        """Arguments the op writes (schema alias annotations with ``!``), and which of them it only writes."""
        args_w, write_only = [], set()
        for i, a in enumerate(func._schema.arguments):
            if a.alias_info is None or not a.alias_info.is_write:
                continue
            value = args[i] if i < len(args) else kwargs.get(a.name)
            if value is None:
                continue
            args_w.append(value)
            if a.kwarg_only or a.name in ("out", "output") or (i == 0 and name in WRITE_ONLY_SELF):
                write_only.add(a.name)
        return {"args": args_w, "write_only": write_only}


class FusedAttention(TorchFunctionMode):
    """Counts ``F.scaled_dot_product_attention`` as the one kernel a GPU runs for it (flash or memory-efficient
    attention: q, k and v read once, the output written once) instead of the math decomposition the meta
    device would trace (an L x L score matrix in float32: about 20 GB per Wan decode that no GPU moves).
    Its MACs (two L x L x d matmuls) are added to ``macs``, so totals match ``lab bench``'s."""

    def __init__(self, traffic: TrafficMode):
        super().__init__()
        self.traffic = traffic
        self.macs = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        q, k, v = args[:3]
        out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
        self.traffic.record("scaled_dot_product_attention", sum(tensor_bytes(t) for t in (q, k, v, out)))
        batch = q.numel() // (q.shape[-2] * q.shape[-1])
        self.macs += batch * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])
        return out


_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


def _cudnn_layout(out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The layout cuDNN gives a convolution's output: channels-last when the input or the weight is
    channels-last (ATen's cudnn_conv_suggest_memory_format). Meta convolutions return contiguous outputs
    whatever their inputs, which would make every channels-last path look like it copies after each conv;
    the trace measures the CUDA path, so it relayouts here (below the mode: not counted)."""
    fmt = _CHANNELS_LAST.get(out.dim())
    if fmt is None or out.is_contiguous(memory_format=fmt) or not _suggests_channels_last(x, weight):
        return out
    return out.contiguous(memory_format=fmt)


def _suggests_channels_last(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """ATen's cudnn_conv_suggest_memory_format(x, weight) != Contiguous: the input or the weight is channels-last."""
    fmt = _CHANNELS_LAST.get(x.dim())
    return fmt is not None and any(t.is_contiguous(memory_format=fmt) and not t.is_contiguous() for t in (x, weight))


def _native_depthwise3d(x: torch.Tensor, weight: torch.Tensor, groups: int) -> bool:
    """Whether CUDA runs this convolution with ATen's own ``conv_depthwise3d`` kernel rather than cuDNN: a 5-D
    depthwise conv (one input channel per group) whose input and weight are both NCDHW. ATen's
    ``use_cudnn_depthwise`` sends depthwise convs to cuDNN only in channels-last, or 4-D fp16 ("5-D contiguous
    depthwise is not supported yet"), and the native kernel is several times slower (../shared/docs/RUNTIME.md)."""
    return (x.dim() == 5 and groups > 1 and groups == x.shape[1] and weight.shape[1] == 1
            and not _suggests_channels_last(x, weight))


def _stage_hooks(decoder: VideoDecoder, mode: TrafficMode) -> list:
    """Forward hooks that tell ``mode`` which stage is running (stages do not nest)."""
    try:
        stages = decoder_stages(decoder)
    except LabError:
        return []
    handles = []
    for stage, modules in stages.items():
        for m in modules:
            def pre(_m, _a, stage=stage):
                mode.stage = stage

            def post(_m, _a, _o):
                mode.stage = "outside"
            handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    return handles


def meta_latents(decoder: VideoDecoder, frames: int, size: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    g = decoder.geometry
    t = g.latent_frames_for(frames)
    h, w = g.latent_size_for(*size)
    return torch.empty(1, g.channels, t, h, w, device="meta", dtype=dtype)


def trace_decoder(decoder: VideoDecoder, z: torch.Tensor, label: str | None = None, top: int = 12) -> dict:
    """Trace one decode of meta latents ``z`` (normalized, as ``decoder.decode`` takes them)."""
    if z.device.type != "meta":
        raise LabError("trace_decoder takes meta-device latents (lab.eval.trace.meta_latents); the trace "
                       "never computes anything")
    mode = TrafficMode()
    attention = FusedAttention(mode)
    handles = _stage_hooks(decoder, mode)
    counter = FlopCounterMode(display=False)
    try:
        with ExitStack() as stack, torch.no_grad():
            stack.enter_context(counter)
            stack.enter_context(mode)
            stack.enter_context(attention)
            decoder.decode(z)
    finally:
        for h in handles:
            h.remove()
    latent_frames = z.shape[2]
    by_op = sorted(mode.by_op.items(), key=lambda kv: -kv[1][1])
    return {
        "label": label or decoder.name,
        "aten_ops": mode.ops,
        "ops_per_latent_frame": round(mode.ops / latent_frames, 1),
        "bytes_moved": mode.bytes,
        "macs": counter.get_total_flops() // 2 + attention.macs,
        "native_depthwise3d_convs": mode.by_op.get("conv_depthwise3d", [0, 0])[0],
        "latents_shape": list(z.shape),
        "dtype": str(z.dtype).removeprefix("torch."),
        "by_op": {k: {"ops": v[0], "bytes": v[1]} for k, v in by_op[:top]},
        "by_stage": {k: {"ops": v[0], "bytes": v[1]} for k, v in mode.by_stage.items()},
    }


def load_meta(spec: str, weights: str | None, dtype: torch.dtype) -> VideoDecoder:
    """A decoder spec (name or folder, ``@runtime`` suffixes as in ``lab bench``) on the meta device."""
    name, runtime = split_runtime(spec)
    if runtime is not None and runtime.searched:
        raise LabError(f"'{spec}': a trace cannot time candidates (@fast, @compile-auto pick by timing); name a "
                       f"fixed runtime, e.g. {name}@chunk8 or {name}@fused")
    if runtime is not None and runtime.compile:
        raise LabError(f"'{spec}': torch.compile fuses kernels the trace cannot see (it runs on meta tensors, "
                       f"eagerly); trace {name}@fused for the lab's fused kernels instead")
    with torch.device("meta"), warnings.catch_warnings():
        # A saved decoder's weights land on meta parameters as no-ops, which diffusers warns about once per
        # tensor: the trace reads shapes only, so no weight is wanted.
        warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter", category=UserWarning)
        dec = load_for_bench(spec, weights, device=None, dtype=None)
    return dec.to(device="meta", dtype=dtype)


def trace(decoders: list[str], *, weights: str | None = "random", frames: int = 81, size=(480, 832),
          dtype: str = "bf16", top: int = 12) -> dict:
    """``python -m lab trace``: trace each decoder spec at ``frames`` x ``size`` in ``dtype``."""
    if not decoders:
        raise LabError("name at least one decoder to trace (--decoders wan2.1,wan2.1@fused)")
    if dtype not in DTYPES:
        raise LabError(f"unknown dtype '{dtype}'; use one of {', '.join(sorted(DTYPES))}")
    torch_dtype = DTYPES[dtype]
    rows = []
    for spec in decoders:
        t0 = time.perf_counter()
        dec = load_meta(spec, weights, torch_dtype)
        z = meta_latents(dec, frames, size, torch_dtype)
        row = trace_decoder(dec, z, label=spec, top=top)
        row["trace_seconds"] = round(time.perf_counter() - t0, 1)
        log.info(f"trace {spec}: {row['aten_ops']} ops ({row['ops_per_latent_frame']}/latent frame), "
                 f"{row['bytes_moved'] / 1e9:.1f} GB, {row['macs'] / 1e12:.3f} TMACs ({row['trace_seconds']} s)")
        rows.append(row)
    return {"frames": frames, "size": list(size), "dtype": dtype, "decoders": rows}
