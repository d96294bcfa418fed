"""Per-stage, per-operator-type profile of a decoder: latency shares (timing hooks, warm-up, device
synchronised) and MAC shares (torch.utils.flop_counter.FlopCounterMode), the lab's version of
Flash-VAED's profile table (METHOD.md section 1.1).

How it measures:
- MACs: one decode under FlopCounterMode; hooks read the running total before and after each stage
  and each operator, so nested modules are attributed exactly. FlopCounterMode counts matmul/conv
  FLOPs only (norms, activations and copies count as 0); MACs = FLOPs / 2.
- Latency: ``repeats`` decodes with hooks that synchronise the device and read a clock around every
  stage and every operator (the first ``warmup`` decodes are discarded); per-decode medians. Time in
  a stage not inside any hooked operator is reported as operator type 'other' (residual adds, cache
  copies, reshapes). Time outside every stage (the per-latent-frame loop, concatenation, clamping) is
  the row 'outside'. The hook-free end-to-end time is reported too (``total_s``) so the hook overhead
  is visible.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lab.arch import decoder_stages
from lab.ops.operators import SwapOp
from lab.plugins import load_families

# Operator type of a module, by class name; a typed module is timed as one unit (its children are not).
# The generic layer types are here; each VAE family registers its own (lab.families, ``register_op_types``).
OP_TYPES: dict[str, str] = {
    "Conv3d": "conv3d", "Conv2d": "conv2d", "Attention": "attention", "RMSNorm": "norm", "GroupNorm": "norm",
    "LayerNorm": "norm", "SiLU": "activation", "GELU": "activation", "ReLU": "activation", "Upsample": "upsample",
    "ZeroPad2d": "pad", "Dropout": "dropout",
}


def register_op_types(types: dict[str, str]) -> None:
    """Class name -> operator type (causal_conv3d, norm, attention, upsample, ...) for the profile table."""
    OP_TYPES.update(types)


def op_type(module: nn.Module) -> str | None:
    if isinstance(module, SwapOp):
        return f"op:{module.op_name}"
    load_families()
    return OP_TYPES.get(type(module).__name__)


def _typed_modules(root: nn.Module) -> list[tuple[nn.Module, str]]:
    t = op_type(root)
    if t is not None:
        return [(root, t)]
    return [pair for child in root.children() for pair in _typed_modules(child)]


class _Hooks:
    """Clock (and optionally FLOP-counter) readings around every stage and typed operator."""

    def __init__(self, stages: dict[str, list[nn.Module]], sync, counter: FlopCounterMode | None = None,
                 with_ops: bool = True):
        self.sync, self.counter = sync, counter
        self.time = defaultdict(float)  # key -> seconds
        self.flops = defaultdict(int)
        self.handles = []
        for stage, mods in stages.items():
            for m in mods:
                self._attach(m, ("stage", stage), outer=True)
                if with_ops:
                    for sub, t in _typed_modules(m):
                        self._attach(sub, ("op", stage, t), outer=False)

    def _read(self):
        if self.counter is not None:
            return self.counter.get_total_flops()
        self.sync()
        return time.perf_counter()

    def _attach(self, m: nn.Module, key, outer: bool):
        # A stage can be a single typed module (Wan's conv_in, conv_out): its stage clock must start
        # before and stop after the operator clock on the same module, hence the prepend order.
        starts = []

        def pre(mod, args):
            starts.append(self._read())

        def post(mod, args, out):
            delta = self._read() - starts.pop()
            if self.counter is not None:
                self.flops[key] += delta
            else:
                self.time[key] += delta

        self.handles += [m.register_forward_pre_hook(pre, prepend=outer),
                         m.register_forward_hook(post, prepend=not outer)]

    def remove(self):
        for h in self.handles:
            h.remove()


def _sync_for(device: torch.device):
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


@torch.no_grad()
def profile_decoder(decoder, latent_frames: int, latent_size: tuple[int, int], repeats: int = 3,
                    warmup: int = 1, seed: int = 0, batch: int = 1) -> dict:
    """Profile ``decoder`` (any adapter with a stage map: teachers, students, lightweight decoders) decoding random latents of the given shape on
    the decoder's own device/dtype. Returns a JSON-ready dict (see module docstring)."""
    device, dtype = decoder.device, decoder.dtype
    sync = _sync_for(device)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, decoder.geometry.channels, latent_frames, *latent_size, generator=g).to(device, dtype)
    stages = decoder_stages(decoder)

    # MACs (this decode also warms up kernels and allocator).
    counter = FlopCounterMode(display=False)
    flop_hooks = _Hooks(stages, sync, counter)
    try:
        with counter:
            out = decoder.decode(z)
    finally:
        flop_hooks.remove()
    total_flops = counter.get_total_flops()
    for _ in range(max(0, warmup - 1)):
        decoder.decode(z)

    # Hook-free end-to-end time, then hooked per-stage / per-op time, interleaved per repeat.
    totals, per_run = [], []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        decoder.decode(z)
        sync()
        totals.append(time.perf_counter() - t0)
        hooks = _Hooks(stages, sync)
        try:
            t0 = time.perf_counter()
            decoder.decode(z)
            sync()
            wall = time.perf_counter() - t0
        finally:
            hooks.remove()
        per_run.append((dict(hooks.time), wall))

    def med(key):
        return statistics.median(run.get(key, 0.0) for run, _ in per_run)

    def _flops_of(key) -> int:
        return int(flop_hooks.flops.get(key, 0))

    hooked_total = statistics.median(w for _, w in per_run)
    stage_rows = []
    for stage, mods in stages.items():
        s_time, s_flops = med(("stage", stage)), _flops_of(("stage", stage))
        types = sorted({t for m in mods for _, t in _typed_modules(m)})
        ops = []
        for t in types:
            ops.append({"type": t, "seconds": med(("op", stage, t)), "macs": _flops_of(("op", stage, t)) // 2})
        # 'other' per run (stage time not inside a typed op); shares are of the sum of the medians,
        # so they add up to 1 even when per-key medians come from different runs.
        other = statistics.median(max(0.0, run.get(("stage", stage), 0.0)
                                      - sum(run.get(("op", stage, t), 0.0) for t in types)) for run, _ in per_run)
        ops.append({"type": "other", "seconds": other, "macs": max(0, s_flops // 2 - sum(o["macs"] for o in ops))})
        op_total = sum(o["seconds"] for o in ops)
        for o in ops:
            o["latency_share_in_stage"] = o["seconds"] / op_total if op_total > 0 else 0.0
            o["mac_share_in_stage"] = o["macs"] / (s_flops // 2) if s_flops > 0 else 0.0
        stage_rows.append({"stage": stage, "seconds": s_time, "macs": s_flops // 2,
                           "params": sum(p.numel() for m in mods for p in m.parameters()), "ops": ops})
    # Per run, not from the medians: a sum of per-stage medians need not sit below the median wall time.
    outside = statistics.median(max(0.0, wall - sum(v for k, v in run.items() if k[0] == "stage"))
                                for run, wall in per_run)
    stage_rows.append({"stage": "outside", "seconds": outside,
                       "macs": max(0, total_flops // 2 - sum(r["macs"] for r in stage_rows)), "params": 0,
                       "ops": []})
    denom_t = sum(r["seconds"] for r in stage_rows)
    denom_m = sum(r["macs"] for r in stage_rows)
    for r in stage_rows:
        r["latency_share"] = r["seconds"] / denom_t if denom_t > 0 else 0.0
        r["mac_share"] = r["macs"] / denom_m if denom_m > 0 else 0.0
    by_type = defaultdict(lambda: {"seconds": 0.0, "macs": 0})
    for r in stage_rows:
        for o in r["ops"]:
            by_type[o["type"]]["seconds"] += o["seconds"]
            by_type[o["type"]]["macs"] += o["macs"]
    op_types = [{"type": t, **v, "latency_share": v["seconds"] / denom_t if denom_t else 0.0,
                 "mac_share": v["macs"] / denom_m if denom_m else 0.0}
                for t, v in sorted(by_type.items(), key=lambda kv: -kv[1]["seconds"])]
    return {
        "decoder": decoder.name, "device": str(device), "dtype": str(dtype).replace("torch.", ""),
        "latents_shape": list(z.shape), "video_shape": list(out.shape), "repeats": repeats, "warmup": warmup,
        "total_s": statistics.median(totals), "hooked_total_s": hooked_total, "total_macs": total_flops // 2,
        "decoder_params": decoder.decoder_params(), "stages": stage_rows, "op_types": op_types,
    }
