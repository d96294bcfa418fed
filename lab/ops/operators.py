"""Drop-in replacements for a decoder's 3D convolutions, with the temporal contract of the layer
they replace, and a registry of them by name (users add their own with :func:`register_operator`).

Two contracts exist in the lab's decoders and every operator honours the one of the layer it replaces:

- Wan (its causal conv): ``forward(x, cache_x=None)``. Time is padded causally with zeros
  (``2 * pad`` frames in front, none after); ``cache_x`` holds the previous chunk's last input frames
  and replaces that many zero frames. The enclosing block does the cache bookkeeping.
- LTX-Video (its causal conv): ``forward(x)``. Time is padded by repeating the edge frames,
  in front only (``is_causal=True``) or on both sides (``is_causal=False``, the decoder's default).
- LTX-2 (its causal conv): ``forward(x, causal=True)``: LTX-Video's padding, chosen per call
  (the decoder passes its setting), and space padded with 'reflect'. Operators take the same ``causal``
  argument and build their spatial convs with the layer's padding mode.

Built-in operators (Flash-VAED section 1.2), each with an initialisation from the teacher layer:

- ``dwsep3d``: depthwise kt x kh x kw conv then pointwise 1x1x1; fit W[o,i,k] ~ P[o,i] D[i,k] by the
  best rank-1 approximation of each input channel's (out x taps) slice (exact when that slice is rank 1).
- ``conv2plus1d``: per-frame 2D kh x kw conv to ``out`` channels, then a temporal kt x 1 x 1 conv;
  fit by the truncated SVD of W viewed as (out*kt) x (in*kh*kw) (the best separable fit of that rank).
- ``conv2d``: per-frame 2D conv, frames folded into the batch; the temporal kernel is collapsed to the
  current-frame tap or to the sum of taps (exact for temporally constant input).
- ``keep``: the layer stays as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lab.errors import ConfigError, LabError
from lab.plugins import load_families

# ----------------------------------------------------------------------------------------------------
# What a teacher conv looks like: shapes, weights and its temporal padding contract.


@dataclass(frozen=True)
class TimePadding:
    """How a layer pads time. mode: 'zeros-cached' (zeros in front, which cache_x frames replace: Wan),
    'replicate-causal' (repeat the first frame in front: causal LTX) or 'replicate-symmetric' (repeat
    edge frames on both sides: LTX-Video's non-causal decoder)."""

    mode: str
    front: int
    back: int

    @property
    def causal(self) -> bool:
        return self.back == 0

    @staticmethod
    def replicate(kt: int, causal: bool) -> "TimePadding":
        return (TimePadding("replicate-causal", kt - 1, 0) if causal
                else TimePadding("replicate-symmetric", (kt - 1) // 2, (kt - 1) // 2))

    def apply(self, x: torch.Tensor, cache_x: torch.Tensor | None = None, causal: bool | None = None) -> torch.Tensor:
        """``causal``: the call's setting for layers whose causality is a call argument (LTX-2); None
        keeps the layer's own."""
        if causal is not None and self.mode != "zeros-cached" and causal != self.causal:
            return TimePadding.replicate(self.front + self.back + 1, causal).apply(x, cache_x)
        if self.mode == "zeros-cached":
            front = self.front
            # Same arithmetic as Wan's causal conv: cached frames stand in for zero frames.
            if cache_x is not None and front > 0:
                x = torch.cat([cache_x.to(x.device, x.dtype), x], dim=2)
                front -= cache_x.shape[2]
            return F.pad(x, (0, 0, 0, 0, front, 0)) if front > 0 else x
        front = self.front
        if cache_x is not None:
            # Streaming a causal LTX-2 decoder (lab.families.ltx2.stream): the previous chunk's last input
            # frames stand in for the replicated first frame.
            if self.back:
                raise LabError("symmetric (non-causal) replicate padding looks at the next frames: it takes no "
                               "cache_x, the decoder sees the whole clip at once.")
            x = torch.cat([cache_x.to(x.device, x.dtype), x], dim=2)
            front = max(0, front - cache_x.shape[2])
        parts = [x[:, :, :1].expand(-1, -1, front, -1, -1)] if front else []
        parts.append(x)
        if self.back:
            parts.append(x[:, :, -1:].expand(-1, -1, self.back, -1, -1))
        return torch.cat(parts, dim=2) if len(parts) > 1 else x


@dataclass
class ConvSpec:
    """A teacher conv reduced to what an operator needs to replace it."""

    in_channels: int
    out_channels: int
    kernel: tuple[int, int, int]
    spatial_padding: tuple[int, int]
    time: TimePadding
    weight: torch.Tensor  # (out, in, kt, kh, kw)
    bias: torch.Tensor | None
    layer_type: str
    spatial_padding_mode: str = "zeros"  # 'reflect' in LTX-2


#: Per conv class (a registry, as Torch-Pruning dispatches per layer type): how to read its dense conv,
#: spatial padding and temporal padding. Each VAE family registers its causal conv class (lab.families).
CONV_READERS: dict[type, Callable[[nn.Module], tuple[nn.Module, tuple[int, int], TimePadding]]] = {}
#: Conv classes whose temporal causality is a forward argument (``causal=``) rather than a layer setting.
RUNTIME_CAUSAL: set[type] = set()


def register_conv_reader(cls: type, reader: Callable[[nn.Module], tuple[nn.Module, tuple[int, int], TimePadding]],
                         causal_per_call: bool = False) -> None:
    """Let operators replace ``cls`` layers: ``reader(layer)`` -> (its dense nn.Conv3d, (pad_h, pad_w), its
    TimePadding). ``causal_per_call``: the layer takes its causality as a ``causal=`` call argument."""
    CONV_READERS[cls] = reader
    if causal_per_call:
        RUNTIME_CAUSAL.add(cls)


def conv_spec(layer: nn.Module, causal: bool | None = None) -> ConvSpec:
    """Read a conv of a class in CONV_READERS; refuse layers an operator cannot replace. ``causal``: the
    decoder's setting, for classes in RUNTIME_CAUSAL (whose layers do not know it)."""
    load_families()
    kind = type(layer).__name__
    reader = CONV_READERS.get(type(layer))
    if reader is None:
        raise LabError(f"cannot replace a {kind}: operators replace "
                       f"{' and '.join(c.__name__ for c in CONV_READERS)} layers only.")
    conv, spatial, time = reader(layer)
    if causal is not None and type(layer) in RUNTIME_CAUSAL:
        time = TimePadding.replicate(tuple(conv.kernel_size)[0], causal)
    if tuple(conv.stride) != (1, 1, 1) or tuple(conv.dilation) != (1, 1, 1) or conv.groups != 1:
        raise LabError(f"cannot replace a {kind} with stride {tuple(conv.stride)}, dilation "
                       f"{tuple(conv.dilation)}, groups {conv.groups}: only dense stride-1 convs have a "
                       f"drop-in operator (strided temporal convs are kept).")
    return ConvSpec(conv.in_channels, conv.out_channels, tuple(conv.kernel_size), spatial, time,
                    conv.weight.detach(), None if conv.bias is None else conv.bias.detach(), kind,
                    conv.padding_mode)


# ----------------------------------------------------------------------------------------------------
# Operators.


class SwapOp(nn.Module):
    """Base of every operator: keeps the replaced layer's temporal contract (``self.time``).

    Subclasses set ``op_name`` and ``temporal_mixing`` ('causal' when they look at past frames through
    ``self.time``, 'none' when each output frame depends on its own input frame only) and implement
    ``forward(x, cache_x=None, causal=None)`` (``causal``: the call's setting in LTX-2 decoders, for
    ``self.time.apply``) and ``init_from(spec, **options) -> dict``."""

    op_name = ""
    temporal_mixing = "causal"

    def __init__(self, spec: ConvSpec):
        super().__init__()
        self.in_channels, self.out_channels = spec.in_channels, spec.out_channels
        self.kernel_size = spec.kernel
        self.time = spec.time
        self.replaces = spec.layer_type

    def extra_repr(self) -> str:
        return (f"{self.in_channels}->{self.out_channels}, kernel={self.kernel_size}, time={self.time.mode}, "
                f"replaces={self.replaces}")

    def init_from(self, spec: ConvSpec, **options) -> dict:
        raise NotImplementedError


def _fold(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(N, C, T, H, W) -> (N*T, C, H, W): frames into the batch, so 2D kernels run per frame."""
    n, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(n * t, c, h, w), t


def _unfold(y: torch.Tensor, t: int) -> torch.Tensor:
    nt, c, h, w = y.shape
    return y.reshape(nt // t, t, c, h, w).transpose(1, 2)


def _eigh(sym: torch.Tensor):
    """torch.linalg.eigh on one thread: batched LAPACK calls spin badly when the CPU is shared
    (measured 58 s vs 0.16 s for 384 27x27 matrices on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(sym)
    finally:
        torch.set_num_threads(threads)


def _cpu64(weight: torch.Tensor) -> torch.Tensor:
    """The teacher weight in float64 on the CPU for the fits: ``_eigh`` is a host LAPACK call, and float64
    is slow on consumer GPUs. The fitted factors go back with ``copy_`` (to the op's device and dtype)."""
    return weight.detach().to("cpu", torch.float64)


def _rel_err(approx: torch.Tensor, exact: torch.Tensor) -> float:
    return float((approx - exact).norm() / exact.norm().clamp_min(1e-12))


class DepthwiseSeparable3d(SwapOp):
    """Causal depthwise kt x kh x kw conv (one filter per input channel) then a pointwise 1x1x1 conv."""

    op_name = "dwsep3d"

    def __init__(self, spec: ConvSpec):
        super().__init__(spec)
        i, o = spec.in_channels, spec.out_channels
        self.depthwise = nn.Conv3d(i, i, spec.kernel, padding=(0, *spec.spatial_padding), groups=i, bias=False,
                                   padding_mode=spec.spatial_padding_mode)
        self.pointwise = nn.Conv3d(i, o, 1, bias=spec.bias is not None)

    def forward(self, x, cache_x=None, causal=None):
        return self.pointwise(self.depthwise(self.time.apply(x, cache_x, causal)))

    def init_from(self, spec: ConvSpec, **options) -> dict:
        w = _cpu64(spec.weight)
        o, i = w.shape[:2]
        per_in = w.reshape(o, i, -1).transpose(0, 1)  # (in, out, taps): one matrix per input channel
        # Best rank-1 fit of each slice = its top right singular vector (top eigenvector of the
        # taps x taps Gram matrix; eigh on 27x27 is far cheaper than an SVD of out x taps).
        _, vecs = _eigh(per_in.transpose(1, 2) @ per_in)
        dw = vecs[:, :, -1]  # D[i, k], unit norm
        pw = torch.einsum("iok,ik->oi", per_in, dw)  # P[o, i] = M_i D_i
        with torch.no_grad():
            self.pointwise.weight.copy_(pw.reshape(o, i, 1, 1, 1))
            self.depthwise.weight.copy_(dw.reshape(i, 1, *spec.kernel))
            if spec.bias is not None:
                self.pointwise.bias.copy_(spec.bias)
        approx = torch.einsum("oi,ik->oik", pw, dw)
        return {"weight_fit_rel_err": _rel_err(approx, w.reshape(o, i, -1))}


class Conv2Plus1d(SwapOp):
    """(2+1)D: per-frame 2D kh x kw conv to ``out`` channels, then a causal kt x 1 x 1 temporal conv.
    The 2D part runs on the cached frames too: the cache contract is about input frames."""

    op_name = "conv2plus1d"

    def __init__(self, spec: ConvSpec):
        super().__init__(spec)
        kt, kh, kw = spec.kernel
        self.mid_channels = spec.out_channels  # 9*in*out + 3*out*out: ~27/12 fewer MACs than 3x3x3 at in=out
        self.spatial = nn.Conv2d(spec.in_channels, self.mid_channels, (kh, kw), padding=spec.spatial_padding,
                                 bias=False, padding_mode=spec.spatial_padding_mode)
        self.temporal = nn.Conv3d(self.mid_channels, spec.out_channels, (kt, 1, 1), bias=spec.bias is not None)

    def forward(self, x, cache_x=None, causal=None):
        # Zero or replicated time padding commutes with a bias-free per-frame conv, so pad first.
        xf, t = _fold(self.time.apply(x, cache_x, causal))
        return self.temporal(_unfold(self.spatial(xf), t))

    def init_from(self, spec: ConvSpec, **options) -> dict:
        w = _cpu64(spec.weight)
        o, i, kt, kh, kw = w.shape
        m = self.mid_channels
        mat = w.permute(0, 2, 1, 3, 4).reshape(o * kt, i * kh * kw)
        # Truncated SVD via the (out*kt)-sided Gram matrix: A = top-m eigenvectors, B = A^T mat;
        # A @ B is the best rank-m approximation of mat (Eckart-Young).
        _, vecs = _eigh(mat @ mat.T)
        r = min(m, vecs.shape[1])
        a = torch.zeros(o * kt, m, dtype=w.dtype, device=w.device)
        a[:, :r] = vecs[:, -r:].flip(1)
        b = a.T @ mat
        with torch.no_grad():
            self.spatial.weight.copy_(b.reshape(m, i, kh, kw))
            self.temporal.weight.copy_(a.reshape(o, kt, m).permute(0, 2, 1).reshape(o, m, kt, 1, 1))
            if spec.bias is not None:
                self.temporal.bias.copy_(spec.bias)
        return {"weight_fit_rel_err": _rel_err(a @ b, mat)}


class FrameConv2d(SwapOp):
    """Pure 2D kh x kw conv per frame (frames folded into the batch); takes and ignores ``cache_x``,
    so it is causal in any decoder."""

    op_name = "conv2d"
    temporal_mixing = "none"

    def __init__(self, spec: ConvSpec):
        super().__init__(spec)
        self.conv = nn.Conv2d(spec.in_channels, spec.out_channels, spec.kernel[1:], padding=spec.spatial_padding,
                              bias=spec.bias is not None, padding_mode=spec.spatial_padding_mode)
        self.collapse = ""

    def forward(self, x, cache_x=None, causal=None):
        xf, t = _fold(x)
        return _unfold(self.conv(xf), t)

    @staticmethod
    def collapsed(spec: ConvSpec, how: str) -> torch.Tensor:
        """The 2D kernel for collapse 'current' (the tap that sees the output's own frame: the last one
        of a causal kernel, the centre one of a symmetric kernel) or 'sum' (all taps added)."""
        if how == "sum":
            return spec.weight.sum(dim=2)
        if how == "current":
            return spec.weight[:, :, spec.time.front]
        raise ConfigError(f"unknown temporal collapse '{how}'; use 'current', 'sum' or 'auto'.")

    def init_from(self, spec: ConvSpec, collapse: str = "sum", **options) -> dict:
        with torch.no_grad():
            self.conv.weight.copy_(self.collapsed(spec, collapse))
            if spec.bias is not None:
                self.conv.bias.copy_(spec.bias)
        self.collapse = collapse
        return {"collapse": collapse}


# ----------------------------------------------------------------------------------------------------
# Registry.


@dataclass(frozen=True)
class OperatorSpec:
    name: str
    build: Callable[[ConvSpec], SwapOp] | None  # None for 'keep'
    description: str
    causal: bool = True  # False: looks at future frames, refused in causal decoders


OPERATORS: dict[str, OperatorSpec] = {}


def register_operator(name: str, build: Callable[[ConvSpec], SwapOp] | None, description: str,
                      causal: bool = True, replace: bool = False) -> OperatorSpec:
    """Add an operator. ``build(spec)`` returns a module with ``forward(x, cache_x=None, causal=None)`` and
    ``init_from(spec, **options) -> dict``. Declare ``causal=False`` for ops that look ahead in time;
    causal decoders also probe every built op and refuse one whose output leaks future frames."""
    if name in OPERATORS and not replace:
        raise ConfigError(f"operator '{name}' is already registered; pick another name or pass replace=True.")
    spec = OperatorSpec(name, build, description, causal)
    OPERATORS[name] = spec
    return spec


def get_operator(name: str) -> OperatorSpec:
    try:
        return OPERATORS[name]
    except KeyError:
        raise ConfigError(f"unknown operator '{name}'; available: {', '.join(OPERATORS)} "
                          f"(lab.ops.operators.register_operator adds one).") from None


def list_operators() -> list[dict]:
    return [{"name": s.name, "description": s.description, "causal": s.causal} for s in OPERATORS.values()]


register_operator("keep", None, "leave the layer as it is")
register_operator("dwsep3d", DepthwiseSeparable3d,
                  "depthwise kt x kh x kw conv + pointwise 1x1x1, same temporal padding/cache as the layer")
register_operator("conv2plus1d", Conv2Plus1d,
                  "(2+1)D: per-frame 2D kh x kw conv + temporal kt x 1 x 1 conv with the layer's padding/cache")
register_operator("conv2d", FrameConv2d, "per-frame 2D kh x kw conv (frames in the batch); no temporal mixing")
