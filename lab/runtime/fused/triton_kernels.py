"""Triton kernels behind the fused ops (lab.runtime.fused.ops), for CUDA.

Each entry point returns True when it ran, False when it does not apply (no Triton, a layout it does not
take, a width beyond one block), in which case the op runs its reference. Triton is imported on first
use only: it ships with torch's CUDA wheels and CPU users never need it. With ``TRITON_INTERPRET=1`` the
same kernels run on CPU tensors through Triton's interpreter, which is how the tests check them without a
GPU (``LAB_TRITON_ON_CPU=1`` lets the entry points accept CPU tensors).

Layout: a norm reduces over channels at every (n, position); the kernels take any tensor whose non-channel,
non-batch dimensions merge into one position index with a single stride (contiguous NCDHW: position
stride 1, channel stride T*H*W; channels-last: channel stride 1, position stride C; and slices of either
along time), so the same kernel serves the reference layout and the channels-last buffers of the runtime.
"""

from __future__ import annotations

import functools
import logging
import os

import torch

log = logging.getLogger("lab")

#: per kernel: "ok" once it ran and matched its reference, or "disabled: why" (the reference runs instead)
STATUS: dict[str, str] = {}

#: how a kernel rounds its float32 arithmetic to the tensor's dtype (triton_src._round)
_ROUND = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}
#: widest channel block a norm kernel holds in registers (Wan's widest stage has 384 channels)
MAX_BLOCK_C = 1024


@functools.lru_cache(maxsize=None)
def _triton():
    """(triton, triton.language) or None."""
    try:
        import triton  # deferred: optional, CUDA only (or the interpreter in tests)
        import triton.language as tl  # deferred: as above
    except Exception:  # noqa: BLE001 - an absent or broken Triton means "use the reference"
        return None
    return triton, tl


def available() -> bool:
    return _triton() is not None


def _device_ok(*tensors) -> bool:
    if all(t.is_cuda for t in tensors):
        return True
    return os.environ.get("LAB_TRITON_ON_CPU") == "1" and os.environ.get("TRITON_INTERPRET") == "1"


def npc_strides(x: torch.Tensor) -> tuple[int, int, int] | None:
    """(batch, position, channel) strides of ``x`` (N, C, *spatial) when its spatial dims merge into one
    position index, else None."""
    if x.ndim < 3:
        return None
    sizes, strides = x.shape[2:], x.stride()[2:]
    pos = None
    expected = None
    for size, stride in reversed(list(zip(sizes, strides))):
        if size == 1:
            continue
        if pos is None:
            pos, expected = stride, stride * size
        elif stride != expected:
            return None
        else:
            expected = stride * size
    return x.stride(0), (pos if pos is not None else 1), x.stride(1)


def _positions(x: torch.Tensor) -> int:
    n = 1
    for s in x.shape[2:]:
        n *= s
    return n


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@functools.lru_cache(maxsize=None)
def _kernels():
    from lab.runtime.fused import triton_src  # deferred: needs Triton (CUDA, or its interpreter in tests)
    return {"rms": triton_src.rms_norm_act_kernel, "folded": triton_src.folded_rms_norm_act_kernel,
            "mean": triton_src.mean_rms_norm_act_kernel, "channel": triton_src.channel_rms_norm_act_kernel,
            "residual": triton_src.bias_residual_add_kernel,
            "interleave": triton_src.interleave_upsample_kernel}


def _norm_launch(x, out):
    """(strides of x, strides of out, positions, BLOCK_P, BLOCK_C, grid) or None when the kernel does not apply."""
    if not available() or not _device_ok(x, out) or x.shape != out.shape or x.dtype not in _ROUND \
            or out.dtype != x.dtype:
        return None
    sx, so = npc_strides(x), npc_strides(out)
    c = x.shape[1]
    if sx is None or so is None or c > MAX_BLOCK_C or x.numel() == 0:
        return None
    block_c = max(16, _next_pow2(c))
    block_p = max(16, min(256, 4096 // block_c))
    p = _positions(x)
    triton, _ = _triton()
    return sx, so, p, block_p, block_c, (triton.cdiv(p, block_p), x.shape[0])


def rms_norm_act(x, gamma, bias, scale, eps, act, out, pre_bias=None) -> bool:
    launch = _norm_launch(x, out)
    if launch is None:
        return False
    sx, so, p, block_p, block_c, grid = launch
    _kernels()["rms"][grid](x, gamma.contiguous(), bias.contiguous() if bias is not None else gamma,
                            pre_bias.to(x.dtype).contiguous() if pre_bias is not None else gamma, out, p,
                            x.shape[1], *sx, *so, float(scale), float(eps), HAS_BIAS=bias is not None,
                            HAS_PRE=pre_bias is not None, ACT=bool(act), ROUND=_ROUND[x.dtype], BLOCK_P=block_p,
                            BLOCK_C=block_c)
    return True


def _weighted_norm(kernel: str, x, weight, eps, act, out, pre_bias) -> bool:
    """Launch a norm kernel that takes an optional per-channel weight and 1/C (``mean``: diffusers' RMSNorm,
    ``channel``: LTX-2's PerChannelRMSNorm)."""
    if weight is not None and weight.dtype != x.dtype:
        return False  # a float32 weight on half activations computes in float32: the reference's case
    launch = _norm_launch(x, out)
    if launch is None:
        return False
    sx, so, p, block_p, block_c, grid = launch
    _kernels()[kernel][grid](x, weight.contiguous() if weight is not None else x,
                             pre_bias.to(x.dtype).contiguous() if pre_bias is not None else x, out, p, x.shape[1],
                             *sx, *so, 1.0 / x.shape[1], float(eps), HAS_WEIGHT=weight is not None,
                             HAS_PRE=pre_bias is not None, ACT=bool(act), ROUND=_ROUND[x.dtype], BLOCK_P=block_p,
                             BLOCK_C=block_c)
    return True


def mean_rms_norm_act(x, weight, eps, act, out, pre_bias=None) -> bool:
    return _weighted_norm("mean", x, weight, eps, act, out, pre_bias)


def channel_rms_norm_act(x, weight, eps, act, out, pre_bias=None) -> bool:
    return _weighted_norm("channel", x, weight, eps, act, out, pre_bias)


#: widest folded norm the kernel takes (its x^T Q x is a BLOCK_C x BLOCK_C product per position block);
#: folded norms live on pruned, narrow groups
MAX_FOLDED_C = 128


def folded_rms_norm_act(x, gamma, bias, quad, lin, const, eps, act, out, pre_bias=None) -> bool:
    if x.shape[1] > MAX_FOLDED_C:
        return False
    launch = _norm_launch(x, out)
    if launch is None:
        return False
    sx, so, p, block_p, block_c, grid = launch
    _kernels()["folded"][grid](x, gamma.contiguous(), bias.contiguous() if bias is not None else gamma,
                               pre_bias.to(x.dtype).contiguous() if pre_bias is not None else gamma,
                               quad.float().contiguous(), lin.float().contiguous(), const.float().reshape(1), out,
                               p, x.shape[1], *sx, *so, float(eps), HAS_BIAS=bias is not None,
                               HAS_PRE=pre_bias is not None, ACT=bool(act), ROUND=_ROUND[x.dtype], BLOCK_P=block_p,
                               BLOCK_C=block_c)
    return True


def interleave_upsample(y, out, bias=None) -> bool:
    if not available() or not _device_ok(y, out, *([] if bias is None else [bias])) or y.numel() == 0 \
            or y.dtype not in _ROUND or y.dtype != out.dtype:
        return False
    n, c2, t, h, w = y.shape
    c = c2 // 2
    if out.shape != (n * t * 2, c, 2 * h, 2 * w) or (bias is not None and bias.shape != (c2,)):
        return False
    block_c = min(64, max(16, _next_pow2(c)))
    block_w = max(16, min(128, 4096 // block_c))
    _kernels()["interleave"][(n * t * 2, 2 * h)](y, bias.contiguous() if bias is not None else y, out, c, t, h, w,
                                                  *y.stride(), *out.stride(), HAS_BIAS=bias is not None,
                                                  ROUND=_ROUND[y.dtype], BLOCK_W=block_w, BLOCK_C=block_c)
    return True


def bias_residual_add(y, y_bias, h, h_bias, out) -> bool:
    if not available() or not _device_ok(y, h, out) or not (y.shape == h.shape == out.shape) or y.numel() == 0 \
            or y.dtype not in _ROUND or not (y.dtype == h.dtype == out.dtype):
        return False
    sy, sh, so = npc_strides(y), npc_strides(h), npc_strides(out)
    if sy is None or sh is None or so is None:
        return False
    p = _positions(y)
    block_c = min(64, max(16, _next_pow2(y.shape[1])))
    block_p = max(16, 4096 // block_c)
    triton, _ = _triton()
    _kernels()["residual"][(triton.cdiv(p, block_p), y.shape[0])](
        y, y_bias.to(y.dtype).contiguous() if y_bias is not None else y, h,
        h_bias.to(y.dtype).contiguous() if h_bias is not None else y, out, p, y.shape[1], *sy, *sh, *so,
        HAS_YB=y_bias is not None, HAS_HB=h_bias is not None, ROUND=_ROUND[y.dtype], BLOCK_P=block_p, BLOCK_C=block_c)
    return True


def guarded(name: str, kernel, reference, out: torch.Tensor) -> bool:
    """Run ``kernel()`` (an entry point above, writing ``out``) unless it was disabled. A kernel that raises
    (a Triton that cannot build it) or whose first output differs from ``reference()`` on that same input
    is disabled for the process with one warning, and the caller runs the reference: a broken kernel costs
    speed, never a wrong video or a failed decode. Returns whether the kernel's output stands in ``out``."""
    if STATUS.get(name, "").startswith("disabled"):
        return False
    try:
        ran = kernel()
    except Exception as exc:  # noqa: BLE001 - any build or launch failure means "use the reference"
        STATUS[name] = f"disabled: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        log.warning("fused runtime: the Triton kernel %s failed (%s); running its reference", name, STATUS[name])
        return False
    if ran and name not in STATUS:
        ref = reference()
        err = float((out.float() - ref.float()).abs().max()) if out.numel() else 0.0
        scale = float(ref.float().abs().max()) if ref.numel() else 0.0
        # float32: summation order; half precision: a rare last-bit difference of the float32 norm
        tol = (1e-5 if out.dtype == torch.float32 else 1e-2) * max(scale, 1.0)
        if not err <= tol:
            STATUS[name] = f"disabled: differs from its reference by {err:.3g} (tolerance {tol:.3g})"
            log.warning("fused runtime: the Triton kernel %s %s; running its reference", name, STATUS[name])
            out.copy_(ref)
            return True  # out holds the reference now
        STATUS[name] = "ok"
    return ran
