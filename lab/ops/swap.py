"""Apply a swap plan: replace, in place, the 3D convs of each named stage by the named operator.

Works on any module tree with the diffusers VAE's paths and block classes (``adapter.vae`` of a teacher,
or a pruned student), so pruning and swapping compose in either order. What is never swapped, whatever
the plan says (Flash-VAED keeps them): Wan's temporal upsampling ``time_conv`` and 2D resample convs,
LTX's depth-to-space upsampler convs, attention, and 1x1x1 convs (already pointwise, nothing to gain).
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from lab.errors import LabError
from lab.models.stages import decoder_stages, stage_kind, stage_paths
from lab.ops.operators import FrameConv2d, SwapOp, conv_spec, get_operator
from lab.ops.plan import resolve_plan

log = logging.getLogger("lab")

_CAUSAL_CONVS = ("WanCausalConv3d", "LTXVideoCausalConv3d")
# Subtrees whose convs stay: temporal upsampling / depth-to-space convs and attention.
_KEPT_SUBTREES = ("WanResample", "LTXVideoUpsampler3d", "WanAttentionBlock", "LTXVideoAttention")


def _kernel(layer: nn.Module) -> tuple[int, ...]:
    return tuple(layer.kernel_size)


def swappable_convs(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """(path, layer) of the convs a plan may replace inside ``module`` (including swapped ones)."""
    found = []
    for name, child in module.named_children():
        path = f"{prefix}.{name}" if prefix else name
        kind = type(child).__name__
        if isinstance(child, SwapOp):
            found.append((path, child))
        elif kind in _CAUSAL_CONVS:
            if torch.Size(_kernel(child)).numel() > 1:
                found.append((path, child))
        elif kind not in _KEPT_SUBTREES:
            found.extend(swappable_convs(child, path))
    if not prefix and (isinstance(module, SwapOp) or type(module).__name__ in _CAUSAL_CONVS):
        # A stage path that is itself a conv (Wan's decoder.conv_in / conv_out).
        if isinstance(module, SwapOp) or torch.Size(_kernel(module)).numel() > 1:
            found.append(("", module))
    return found


def family_kind(decoder) -> str:
    """The stage-map kind ('wan' or 'ltx') of an adapter: teachers say it in ``adapter_kind``; students
    built from them (e.g. 'wan-student') keep the teacher's module paths, so the prefix decides."""
    kind = stage_kind(decoder)
    if kind is None:
        raise LabError(f"{getattr(decoder, 'name', decoder)} is not a Wan or LTX-Video decoder with a diffusers-style "
                       f"vae (adapter kind '{getattr(decoder, 'adapter_kind', '?')}'); operator swaps and the "
                       f"profiler need one of those module trees.")
    return kind


def stage_modules(decoder) -> dict[str, list[nn.Module]]:
    """Stage name -> modules of an adapter (teacher or student), by the shared stage map."""
    family_kind(decoder)  # the swap-specific error for decoders without one
    return decoder_stages(decoder)


def decoder_is_causal(vae_like: nn.Module, kind: str) -> bool:
    if kind == "wan":
        return True
    return bool(getattr(vae_like.decoder.conv_in, "is_causal", False))


def _decoder_params(vae_like: nn.Module, kind: str) -> int:
    parts = [vae_like.decoder] + ([vae_like.post_quant_conv] if kind == "wan" else [])
    return sum(p.numel() for m in parts for p in m.parameters())


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def run_vae(vae_like: nn.Module, kind: str, z_raw: torch.Tensor) -> torch.Tensor:
    """Decode raw (denormalised) latents with the VAE itself, as the adapters do."""
    if kind == "ltx" and vae_like.config.timestep_conditioning:
        temb = torch.zeros(z_raw.shape[0], device=z_raw.device, dtype=z_raw.dtype)
        return vae_like.decode(z_raw, temb).sample
    return vae_like.decode(z_raw).sample


def _capture_io(vae_like, kind, z_raw, layers: dict[str, nn.Module], max_calls: int = 2) -> dict[str, list]:
    """Each layer's first ``max_calls`` (args, output) during a decode of the calibration latents."""
    seen: dict[str, list] = {p: [] for p in layers}
    handles = []
    for path, layer in layers.items():
        def hook(mod, args, out, path=path):
            if len(seen[path]) < max_calls:
                seen[path].append((tuple(a.detach().clone() if torch.is_tensor(a) else a for a in args),
                                   out.detach().clone()))
        handles.append(layer.register_forward_hook(hook))
    try:
        with torch.no_grad():
            run_vae(vae_like, kind, z_raw)
    finally:
        for h in handles:
            h.remove()
    return seen


def _check_causal(op: nn.Module, path: str, op_name: str, wan: bool) -> None:
    """Probe a built op: a change to the last frame must leave earlier outputs alone, and (Wan) a chunk
    decoded with the previous frame as cache_x must equal the same frames of the whole-clip output."""
    p = next(op.parameters(), None)
    dev, dt = (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, op.in_channels, 3, 5, 5, generator=g).to(dev, dt)
    x2 = x.clone()
    x2[:, :, -1] += 1.0
    with torch.no_grad():
        y, y2 = op(x), op(x2)
        if y.shape[2] != x.shape[2]:
            raise LabError(f"operator '{op_name}' at {path} changed the frame count ({x.shape[2]} -> {y.shape[2]}); "
                           f"a drop-in op must return one output frame per input frame.")
        # Different chunkings round differently; half precision needs a looser bound than fp32.
        rel = 1e-4 if dt in (torch.float32, torch.float64) else 3e-2
        tol = rel * float(y.abs().max().clamp_min(1.0))
        if (y[:, :, :-1] - y2[:, :, :-1]).abs().max() > tol:
            raise LabError(f"operator '{op_name}' at {path} is not causal: changing the last input frame changed "
                           f"earlier output frames. Causal decoders ({'Wan' if wan else 'causal LTX'}) need ops "
                           f"that look only at past frames; use dwsep3d, conv2plus1d or conv2d, or fix the op's "
                           f"temporal padding (all of it in front).")
        if wan:
            chunk = op(x[:, :, 1:], x[:, :, :1])
            if (chunk - y[:, :, 1:]).abs().max() > tol:
                raise LabError(f"operator '{op_name}' at {path} breaks Wan's cache contract: forward(x, cache_x) with "
                               f"the previous frame as cache_x differs from the whole-clip output. Prepend cache_x "
                               f"in place of that many front padding frames (see WanCausalConv3d.forward).")


def apply_operators(vae_like: nn.Module, kind: str, operators: dict[str, str] | str,
                    init_from_existing: bool = True, calibration: torch.Tensor | None = None,
                    collapse: str = "auto") -> dict:
    """Replace, in place, the swappable convs of each stage by the plan's operator.

    ``operators``: a plan (name, 'STAGE=OP,...' text or {stage: op}); stages not named are kept.
    ``init_from_existing``: initialise each op from the layer it replaces (else default init, e.g. to
    rebuild a saved student before ``load_state_dict``). ``calibration``: raw latents (as
    ``vae.decode`` takes them) used by ``collapse='auto'`` to pick, per layer, the 2D collapse
    ('current' or 'sum') with the lower output error on the layer's real inputs; without them 'auto'
    means 'sum' (exact on static content). Returns a summary: per layer and per stage, the operator and
    params before/after, and the init fit errors.
    """
    num_up = len(vae_like.decoder.up_blocks)
    plan = resolve_plan(operators, kind, num_up)
    causal = decoder_is_causal(vae_like, kind)
    if collapse not in ("auto", "current", "sum"):
        raise LabError(f"collapse must be 'auto', 'current' or 'sum', got '{collapse}'.")
    params_before = _decoder_params(vae_like, kind)
    paths = stage_paths(kind, num_up)

    # 1. Decide what to replace (and refuse bad requests before touching the model).
    targets: list[tuple[str, str, str, nn.Module]] = []  # (stage, path, op, layer)
    for stage, op_name in plan.items():
        if op_name == "keep":
            continue
        spec = get_operator(op_name)
        if causal and not spec.causal:
            raise LabError(f"operator '{op_name}' looks at future frames, so it cannot go into stage '{stage}' of a "
                           f"causal {kind} decoder (streaming would change). Pick a causal operator: dwsep3d, "
                           f"conv2plus1d or conv2d.")
        for root in paths[stage]:
            module = vae_like.get_submodule(root)
            for rel, layer in swappable_convs(module):
                path = f"{root}.{rel}" if rel else root
                if isinstance(layer, SwapOp):
                    raise LabError(f"{path} was already replaced by '{layer.op_name}'; apply plans to an unswapped "
                                   f"model (reload it, or rebuild the student) instead of swapping twice.")
                targets.append((stage, path, op_name, layer))

    # 2. Real inputs of the layers whose 2D collapse is chosen by measured error.
    io = {}
    if init_from_existing and collapse == "auto" and calibration is not None:
        auto = {p: l for s, p, o, l in targets if get_operator(o).build is FrameConv2d}
        if auto:
            io = _capture_io(vae_like, kind, calibration, auto)

    # 3. Build, initialise, probe, install.
    rows = []
    for stage, path, op_name, layer in targets:
        spec = conv_spec(layer)
        op = get_operator(op_name).build(spec)
        w = spec.weight
        op.to(device=w.device, dtype=w.dtype)
        info: dict = {}
        if init_from_existing:
            if isinstance(op, FrameConv2d):
                info = _init_collapse(op, spec, collapse, io.get(path))
            else:
                info = op.init_from(spec)
        if causal:
            _check_causal(op, path, op_name, wan=kind == "wan")
        parent_path, _, attr = path.rpartition(".")
        setattr(vae_like.get_submodule(parent_path) if parent_path else vae_like, attr, op)
        rows.append({"stage": stage, "path": path, "operator": op_name, "kernel": list(spec.kernel),
                     "in": spec.in_channels, "out": spec.out_channels,
                     "params_before": _count(layer), "params_after": _count(op), **info})

    stages = {}
    for stage, op_name in plan.items():
        mine = [r for r in rows if r["stage"] == stage]
        stages[stage] = {"operator": op_name, "layers": len(mine),
                         "params_before": sum(r["params_before"] for r in mine),
                         "params_after": sum(r["params_after"] for r in mine)}
    summary = {"kind": kind, "plan": plan, "causal": causal, "replaced": rows, "stages": stages,
               "params_before": params_before, "params_after": _decoder_params(vae_like, kind)}
    log.debug("swapped %d layers: %d -> %d params", len(rows), params_before, summary["params_after"])
    return summary


def _init_collapse(op: FrameConv2d, spec, collapse: str, io: list | None) -> dict:
    if collapse != "auto":
        return op.init_from(spec, collapse=collapse)
    if not io:
        return {**op.init_from(spec, collapse="sum"), "collapse_reason": "no calibration latents: sum of taps"}
    errors = {}
    for how in ("current", "sum"):
        op.init_from(spec, collapse=how)
        with torch.no_grad():
            num = sum(float((op(*args) - out).pow(2).sum()) for args, out in io)
            den = sum(float(out.pow(2).sum()) for _, out in io)
        errors[how] = (num / max(den, 1e-30)) ** 0.5
    best = min(errors, key=errors.get)
    return {**op.init_from(spec, collapse=best), "collapse_rel_err": errors}


def swap_decoder(decoder, operators: dict[str, str] | str, calibration: torch.Tensor | None = None,
                 init_from_existing: bool = True, collapse: str = "auto", copy_model: bool = True):
    """A decoder adapter (teacher or student) with the plan applied to a copy of its ``vae``.
    ``calibration`` here is normalised latents, as ``decoder.decode`` takes them. Returns
    (swapped_decoder, summary)."""
    target = copy.deepcopy(decoder) if copy_model else decoder
    z_raw = None
    if calibration is not None:
        target.check_latents(calibration)
        z_raw = target.denormalize(calibration)
    summary = apply_operators(target.vae, family_kind(target), operators, init_from_existing, z_raw, collapse)
    label = operators if isinstance(operators, str) else "swap"
    target.name = f"{decoder.name}+{label}"
    return target, summary
