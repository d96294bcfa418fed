"""Run by tests/runtime/test_fused.py in a subprocess with TRITON_INTERPRET=1 and LAB_TRITON_ON_CPU=1: the fused
runtime's Triton kernels on CPU tensors, through Triton's interpreter, against the ops' references. Prints one
JSON list of {case, ran, ok, max_abs_err}. Its own process: Triton picks interpreted or compiled kernels
when they are first defined, so the interpreter must be on before lab.runtime.fused.triton_src is imported."""

import json

import torch

from lab.runtime.fused import ops, triton_kernels as tk


def check(case, ran, out, ref, exact):
    err = float((out.double() - ref.double()).abs().max())
    ok = torch.equal(out, ref) if exact else err <= 1e-6 * float(ref.double().abs().max().clamp_min(1e-30))
    return {"case": case, "ran": bool(ran), "ok": bool(ok), "max_abs_err": err}


def main():
    torch.manual_seed(0)
    results = []
    layouts = {"ncdhw": (torch.contiguous_format, (2, 24, 3, 5, 7)), "ndhwc": (torch.channels_last_3d, (1, 40, 2, 6, 5)),
               "nhwc": (torch.channels_last, (3, 20, 6, 5)), "wide": (torch.channels_last_3d, (1, 384, 1, 3, 4))}
    for dt in (torch.float32, torch.bfloat16):
        exact = dt == torch.bfloat16  # bf16: the same rounding points, bit for bit; fp32: summation order only
        for name, (fmt, shape) in layouts.items():
            x = torch.randn(shape).to(dt).contiguous(memory_format=fmt)
            g = (torch.rand(shape[1]) + 0.5).to(dt)
            b = torch.randn(shape[1]).to(dt)
            for bias in (None, b):
                for act in (True, False):
                    out = torch.empty_like(x)
                    ran = tk.rms_norm_act(x, g, bias, shape[1] ** 0.5, 1e-12, act, out)
                    ref = ops.rms_norm_act_reference(x, g, bias, shape[1] ** 0.5, 1e-12, act)
                    results.append(check(f"rms {dt} {name} bias={bias is not None} act={act}", ran, out, ref, exact))
            # the conv bias left to the norm (pre_bias): added and rounded first
            ran = tk.rms_norm_act(x, g, None, shape[1] ** 0.5, 1e-12, True, out, b)
            ref = ops.rms_norm_act_reference(x, g, None, shape[1] ** 0.5, 1e-12, True, b)
            results.append(check(f"rms {dt} {name} pre_bias", ran, out, ref, exact))
        # writing into the slice of a cache buffer (the runtime's destination)
        x = torch.randn(1, 16, 2, 4, 5).to(dt).contiguous(memory_format=torch.channels_last_3d)
        buf = torch.zeros(1, 16, 4, 4, 5, dtype=dt).contiguous(memory_format=torch.channels_last_3d)
        g = torch.ones(16, dtype=dt)
        ran = tk.rms_norm_act(x, g, None, 4.0, 1e-12, True, buf[:, :, 2:])
        ref = ops.rms_norm_act_reference(x, g, None, 4.0, 1e-12, True)
        results.append(check(f"rms {dt} into a buffer slice", ran, buf[:, :, 2:], ref, exact))
        results.append(check(f"rms {dt} cache frames untouched", True, buf[:, :, :2], torch.zeros_like(buf[:, :, :2]),
                             True))
        for weighted in (False, True):  # diffusers' RMSNorm (LTX-Video)
            x = torch.randn(1, 24, 3, 4, 5).to(dt)
            w = (torch.rand(24) + 0.5).to(dt) if weighted else None
            out = torch.empty_like(x)
            ran = tk.mean_rms_norm_act(x, w, 1e-8, True, out)
            ref = ops.mean_rms_norm_act_reference(x, w, 1e-8, True)
            # rsqrt and the mean's reciprocal round differently on the CPU than ATen's: a last-bit difference
            results.append({**check(f"mean-rms {dt} weight={weighted}", ran, out, ref, False),
                            "ok": float((out.float() - ref.float()).abs().max()) <= (1e-5 if not exact else 2e-2)})
            pb = torch.randn(24).to(dt)
            ran = tk.mean_rms_norm_act(x, w, 1e-8, True, out, pb)
            ref = ops.mean_rms_norm_act_reference(x, w, 1e-8, True, pb)
            results.append({**check(f"mean-rms {dt} weight={weighted} pre_bias", ran, out, ref, False),
                            "ok": float((out.float() - ref.float()).abs().max()) <= (1e-5 if not exact else 2e-2)})
        for weighted in (False, True):  # LTX-2's PerChannelRMSNorm (weightless) and the students' weighted one
            x = torch.randn(1, 24, 3, 4, 5).to(dt).contiguous(memory_format=torch.channels_last_3d)
            w = (torch.rand(24) + 0.5).to(dt) if weighted else None
            for pb in (None, torch.randn(24).to(dt)):
                out = torch.empty_like(x)
                ran = tk.channel_rms_norm_act(x, w, 1e-8, True, out, pb)
                ref = ops.channel_rms_norm_act_reference(x, w, 1e-8, True, pb)
                # bf16: every step rounds where eager rounds (a differently ordered float32 sum of the rounded
                # squares can still move the mean by a bit); float32: summation order
                results.append({**check(f"channel-rms {dt} weight={weighted} pre_bias={pb is not None}", ran, out,
                                        ref, False),
                                "ok": float((out.float() - ref.float()).abs().max()) <= (1e-5 if not exact else 2e-2)})
        c = 12
        a = torch.randn(c, c) * 0.1
        q, lin, k = (torch.eye(c) + a @ a.T) / c, torch.randn(c) * 0.01, torch.tensor(0.2)
        for bias in (None, torch.randn(c).to(dt)):
            x = torch.randn(1, c, 2, 5, 6).to(dt).contiguous(memory_format=torch.channels_last_3d)
            g = (torch.rand(c) + 0.5).to(dt)
            out = torch.empty_like(x)
            ran = tk.folded_rms_norm_act(x, g, bias, q, lin, k, 1e-12, True, out)
            ref = ops.folded_rms_norm_act_reference(x, g, bias, q, lin, k, 1e-12, True)
            # float32: the x^T Q x matmul sums in another order than the CPU's
            results.append(check(f"folded {dt} bias={bias is not None}", ran, out, ref, exact) if exact else
                           {**check(f"folded {dt}", ran, out, ref, False),
                            "ok": float((out - ref).abs().max()) <= 1e-5})
            pb = torch.randn(c).to(dt)
            ran = tk.folded_rms_norm_act(x, g, bias, q, lin, k, 1e-12, True, out, pb)
            ref = ops.folded_rms_norm_act_reference(x, g, bias, q, lin, k, 1e-12, True, pb)
            results.append(check(f"folded {dt} pre_bias", ran, out, ref, exact) if exact else
                           {**check(f"folded {dt} pre_bias", ran, out, ref, False),
                            "ok": float((out - ref).abs().max()) <= 1e-5})
        for name, (fmt, shape) in layouts.items():  # the residual kernel: conv2's and the shortcut's biases
            y, h = (torch.randn(shape).to(dt).contiguous(memory_format=fmt) for _ in range(2))
            yb, hb = torch.randn(shape[1]).to(dt), torch.randn(shape[1]).to(dt)
            for h_bias in (None, hb):
                out = torch.empty_like(y)
                ran = tk.bias_residual_add(y, yb, h, h_bias, out)
                ref = ops.bias_residual_add_reference(y, yb, h, h_bias)
                results.append(check(f"residual {dt} {name} h_bias={h_bias is not None}", ran, out, ref, True))
        y = torch.randn(2, 16, 3, 4, 5).to(dt).contiguous(memory_format=torch.channels_last_3d)
        out = torch.empty(12, 8, 8, 10, dtype=dt).contiguous(memory_format=torch.channels_last)
        for bias in (None, torch.randn(16).to(dt)):
            out = torch.empty(12, 8, 8, 10, dtype=dt).contiguous(memory_format=torch.channels_last)
            ran = tk.interleave_upsample(y, out, bias)
            ref = torch.empty_like(out)
            ops.interleave_upsample_reference(y, ref, bias)
            results.append(check(f"interleave {dt} bias={bias is not None}", ran, out, ref, True))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
