"""The Triton source of the fused kernels (lab.runtime.fused.triton_kernels launches them). Imported only
where Triton is importable: Triton resolves the helpers a kernel calls through this module's globals, so
the kernels live at module level, in a module of their own."""

import triton
import triton.language as tl


@triton.jit
def _round(v, ROUND: tl.constexpr):
    """Round float32 ``v`` to the output dtype, kept in float32 (the eager modules round to the tensor dtype
    after every elementwise op, see ops.py). ROUND: 0 = float32 (nothing), 1 = bfloat16, round to nearest
    even on the bits (the same on a GPU and in Triton's interpreter, whose casts truncate), 2 = float16."""
    if ROUND == 1:
        bits = v.to(tl.int32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & -65536
        v = bits.to(tl.float32, bitcast=True)
    elif ROUND == 2:
        v = v.to(tl.float16).to(tl.float32)
    return v


@triton.jit
def _silu(v):
    # ATen's silu: x / (1 + exp(-x)) in float32 (Triton's exp is within a few ulps of expf).
    return tl.div_rn(v, 1.0 + tl.exp(-v))


@triton.jit
def _norm_rows(x_ptr, pb_ptr, P, C, sxn, sxp, sxc, HAS_PRE: tl.constexpr, ROUND: tl.constexpr,
               BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """What every norm kernel starts with: this program's (batch n, positions p, channels c, channel mask, block
    mask) and its rows of x in float32; with HAS_PRE, plus the bias of the conv that wrote x (pb), added and
    rounded as ATen's separate add would."""
    n = tl.program_id(1).to(tl.int64)
    p = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.arange(0, BLOCK_C)
    cm = c < C
    mask = (p[:, None] < P) & cm[None, :]
    x = tl.load(x_ptr + n * sxn + p[:, None] * sxp + c[None, :] * sxc, mask=mask, other=0.0).to(tl.float32)
    if HAS_PRE:
        pb = tl.load(pb_ptr + c, mask=cm, other=0.0).to(tl.float32)
        x = tl.where(mask, _round(x + pb[None, :], ROUND), 0.0)
    return n, p, c, cm, mask, x


@triton.jit
def _act_store(o_ptr, y, n, p, c, mask, son, sop, soc, ACT: tl.constexpr, ROUND: tl.constexpr):
    """What every norm kernel ends with: SiLU (rounded) when ACT, then the rows stored in the output's dtype."""
    if ACT:
        y = _round(_silu(y), ROUND)
    tl.store(o_ptr + n * son + p[:, None] * sop + c[None, :] * soc, y.to(o_ptr.dtype.element_ty), mask=mask)


@triton.jit
def rms_norm_act_kernel(x_ptr, g_ptr, b_ptr, pb_ptr, o_ptr, P, C, sxn, sxp, sxc, son, sop, soc, scale, eps,
                        HAS_BIAS: tl.constexpr, HAS_PRE: tl.constexpr, ACT: tl.constexpr, ROUND: tl.constexpr,
                        BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    n, p, c, cm, mask, x = _norm_rows(x_ptr, pb_ptr, P, C, sxn, sxp, sxc, HAS_PRE, ROUND, BLOCK_P, BLOCK_C)
    # F.normalize: x / max(||x||, eps), in float32 with IEEE-rounded sqrt and division (as ATen; Triton's
    # default sqrt and '/' are approximate)
    denom = tl.maximum(tl.sqrt_rn(tl.sum(x * x, axis=1)), eps)
    y = _round(tl.div_rn(x, denom[:, None]), ROUND)
    y = _round(y * scale, ROUND)
    g = tl.load(g_ptr + c, mask=cm, other=0.0).to(tl.float32)
    y = _round(y * g[None, :], ROUND)
    if HAS_BIAS:
        b = tl.load(b_ptr + c, mask=cm, other=0.0).to(tl.float32)
        y = _round(y + b[None, :], ROUND)
    _act_store(o_ptr, y, n, p, c, mask, son, sop, soc, ACT, ROUND)


@triton.jit
def mean_rms_norm_act_kernel(x_ptr, w_ptr, pb_ptr, o_ptr, P, C, sxn, sxp, sxc, son, sop, soc, inv_c, eps,
                             HAS_WEIGHT: tl.constexpr, HAS_PRE: tl.constexpr, ACT: tl.constexpr, ROUND: tl.constexpr,
                             BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # diffusers' RMSNorm: x * rsqrt(mean(x^2) + eps) in float32 (mean = sum * (1/C), as ATen's), rounded,
    # times the weight and rounded again when there is one; then SiLU.
    n, p, c, cm, mask, x = _norm_rows(x_ptr, pb_ptr, P, C, sxn, sxp, sxc, HAS_PRE, ROUND, BLOCK_P, BLOCK_C)
    inv = tl.math.rsqrt(tl.sum(x * x, axis=1) * inv_c + eps)
    y = _round(x * inv[:, None], ROUND)
    if HAS_WEIGHT:
        w = tl.load(w_ptr + c, mask=cm, other=0.0).to(tl.float32)
        y = _round(y * w[None, :], ROUND)
    _act_store(o_ptr, y, n, p, c, mask, son, sop, soc, ACT, ROUND)


@triton.jit
def channel_rms_norm_act_kernel(x_ptr, w_ptr, pb_ptr, o_ptr, P, C, sxn, sxp, sxc, son, sop, soc, inv_c, eps,
                                HAS_WEIGHT: tl.constexpr, HAS_PRE: tl.constexpr, ACT: tl.constexpr,
                                ROUND: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # LTX-2's PerChannelRMSNorm in the tensor's dtype: x^2, mean (a float32 sum times 1/C, as ATen's), + eps,
    # sqrt and x / rms each rounded; times the weight and rounded when there is one; then SiLU.
    n, p, c, cm, mask, x = _norm_rows(x_ptr, pb_ptr, P, C, sxn, sxp, sxc, HAS_PRE, ROUND, BLOCK_P, BLOCK_C)
    ms = _round(tl.sum(_round(x * x, ROUND), axis=1) * inv_c, ROUND)
    rms = _round(tl.sqrt_rn(_round(ms + eps, ROUND)), ROUND)
    y = _round(tl.div_rn(x, rms[:, None]), ROUND)
    if HAS_WEIGHT:
        w = tl.load(w_ptr + c, mask=cm, other=0.0).to(tl.float32)
        y = _round(y * w[None, :], ROUND)
    _act_store(o_ptr, y, n, p, c, mask, son, sop, soc, ACT, ROUND)


@triton.jit
def folded_rms_norm_act_kernel(x_ptr, g_ptr, b_ptr, pb_ptr, q_ptr, l_ptr, k_ptr, o_ptr, P, C, sxn, sxp, sxc,
                               son, sop, soc, eps, HAS_BIAS: tl.constexpr, HAS_PRE: tl.constexpr, ACT: tl.constexpr,
                               ROUND: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    n, p, c, cm, mask, x = _norm_rows(x_ptr, pb_ptr, P, C, sxn, sxp, sxc, HAS_PRE, ROUND, BLOCK_P, BLOCK_C)
    q = tl.load(q_ptr + c[:, None] * C + c[None, :], mask=cm[:, None] & cm[None, :], other=0.0).to(tl.float32)
    lin = tl.load(l_ptr + c, mask=cm, other=0.0).to(tl.float32)
    const = tl.load(k_ptr).to(tl.float32)
    xq = tl.dot(x, q, input_precision="ieee")
    ms = tl.sum(xq * x, axis=1) + tl.sum(x * lin[None, :], axis=1) + const
    inv = tl.math.rsqrt(tl.maximum(ms, 0.0) + eps)
    g = tl.load(g_ptr + c, mask=cm, other=0.0).to(tl.float32)
    y = x * inv[:, None] * g[None, :]
    if HAS_BIAS:
        b = tl.load(b_ptr + c, mask=cm, other=0.0).to(tl.float32)
        y = y + b[None, :]
    y = _round(y, ROUND)  # the folded norm rounds once, then SiLU runs on the rounded value
    _act_store(o_ptr, y, n, p, c, mask, son, sop, soc, ACT, ROUND)


@triton.jit
def interleave_upsample_kernel(y_ptr, b_ptr, o_ptr, C, T, H, W, syn, syc, syt, syh, syw, son, soc, soh, sow,
                               HAS_BIAS: tl.constexpr, ROUND: tl.constexpr, BLOCK_W: tl.constexpr,
                               BLOCK_C: tl.constexpr):
    # One program per (output frame, output row): out[f, c, oh, ow] = y[n, j*C + c, i, oh // 2, ow // 2]
    # (+ bias[j*C + c], rounded as ATen's add rounds it) with f = (n*T + i)*2 + j. Reads each input row once per
    # output row it feeds (2x), writes once.
    f = tl.program_id(0).to(tl.int64)
    oh = tl.program_id(1).to(tl.int64)
    j = f % 2
    i = (f // 2) % T
    nn = f // (2 * T)
    ih = oh // 2
    for w0 in range(0, 2 * W, BLOCK_W):
        ow = w0 + tl.arange(0, BLOCK_W)
        for c0 in range(0, C, BLOCK_C):
            c = c0 + tl.arange(0, BLOCK_C)
            mask = (ow[:, None] < 2 * W) & (c[None, :] < C)
            src = y_ptr + nn * syn + (j * C + c[None, :]) * syc + i * syt + ih * syh + (ow[:, None] // 2) * syw
            v = tl.load(src, mask=mask, other=0.0)
            if HAS_BIAS:
                b = tl.load(b_ptr + j * C + c, mask=c < C, other=0.0).to(tl.float32)
                v = _round(v.to(tl.float32) + b[None, :], ROUND).to(o_ptr.dtype.element_ty)
            tl.store(o_ptr + f * son + c[None, :] * soc + oh * soh + ow[:, None] * sow, v, mask=mask)


@triton.jit
def bias_residual_add_kernel(y_ptr, yb_ptr, h_ptr, hb_ptr, o_ptr, P, C, syn, syp, syc, shn, shp, shc, son, sop, soc,
                             HAS_YB: tl.constexpr, HAS_HB: tl.constexpr, ROUND: tl.constexpr,
                             BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # (y + y_bias) + (h + h_bias), each add rounded as ATen rounds it, over channel blocks of a position block
    n = tl.program_id(1).to(tl.int64)
    p = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    dtype = o_ptr.dtype.element_ty
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        cm = c < C
        mask = (p[:, None] < P) & cm[None, :]
        y = tl.load(y_ptr + n * syn + p[:, None] * syp + c[None, :] * syc, mask=mask, other=0.0).to(tl.float32)
        if HAS_YB:
            yb = tl.load(yb_ptr + c, mask=cm, other=0.0).to(tl.float32)
            y = _round(y + yb[None, :], ROUND)
        h = tl.load(h_ptr + n * shn + p[:, None] * shp + c[None, :] * shc, mask=mask, other=0.0).to(tl.float32)
        if HAS_HB:
            hb = tl.load(hb_ptr + c, mask=cm, other=0.0).to(tl.float32)
            h = _round(h + hb[None, :], ROUND)
        tl.store(o_ptr + n * son + p[:, None] * sop + c[None, :] * soc, _round(y + h, ROUND).to(dtype), mask=mask)
