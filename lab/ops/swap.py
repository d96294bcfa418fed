"""Apply a swap plan: replace, in place, the 3D convs of each named stage by the named operator.

Works on any module tree with the diffusers VAE's paths and block classes (``adapter.vae`` of a teacher,
or a pruned student), so pruning and swapping compose in either order. What a plan may replace is the
family's swap rules (lab.arch): its causal conv classes; never the subtrees it keeps (Wan's temporal
upsampling ``time_conv`` and 2D resample convs, LTX's depth-to-space upsampler convs, attention), and
never 1x1x1 convs (already pointwise, nothing to gain).
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from lab.arch import Architecture, arch_of, decoder_stages, get_architecture
from lab.errors import LabError
from lab.ops.operators import FrameConv2d, SwapOp, conv_spec, get_operator
from lab.ops.plan import resolve_plan

log = logging.getLogger("lab")

def _kernel(layer: nn.Module) -> tuple[int, ...]:
    return tuple(layer.kernel_size)


def swappable_convs(module: nn.Module, arch: Architecture, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """(path, layer) of the convs a plan may replace inside ``module`` (including swapped ones)."""
    found = []
    for name, child in module.named_children():
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(child, SwapOp):
            found.append((path, child))
        elif isinstance(child, arch.causal_convs):
            if torch.Size(_kernel(child)).numel() > 1:
                found.append((path, child))
        elif not isinstance(child, arch.kept_subtrees):
            found.extend(swappable_convs(child, arch, path))
    if not prefix and (isinstance(module, SwapOp) or isinstance(module, arch.causal_convs)):
        # A stage path that is itself a conv (Wan's decoder.conv_in / conv_out).
        if isinstance(module, SwapOp) or torch.Size(_kernel(module)).numel() > 1:
            found.append(("", module))
    return found


def stage_modules(decoder) -> dict[str, list[nn.Module]]:
    """Stage name -> modules of an adapter (teacher or student), by its family's stage map."""
    arch_of(decoder, "operator swaps and the profiler")  # the swap-specific error for decoders without one
    return decoder_stages(decoder)


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _capture_io(vae_like, arch: Architecture, z_raw, layers: dict[str, nn.Module], max_calls: int = 2) -> dict[str, list]:
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
            arch.decode_raw(vae_like, z_raw)
    finally:
        for h in handles:
            h.remove()
    return seen


def _check_causal(op: nn.Module, path: str, op_name: str, frame_cache: bool) -> None:
    """Probe a built op: a change to the last frame must leave earlier outputs alone, and (families with
    a frame cache, Wan) a chunk decoded with the previous frame as cache_x must equal the same frames of
    the whole-clip output."""
    p = next(op.parameters(), None)
    dev, dt = (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)
    if dev.type == "meta":
        return  # a model built on the meta device (shapes only, e.g. for lab trace) has no values to probe
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
                           f"earlier output frames. Causal decoders need ops "
                           f"that look only at past frames; use dwsep3d, conv2plus1d or conv2d, or fix the op's "
                           f"temporal padding (all of it in front).")
        if frame_cache:
            chunk = op(x[:, :, 1:], x[:, :, :1])
            if (chunk - y[:, :, 1:]).abs().max() > tol:
                raise LabError(f"operator '{op_name}' at {path} breaks the frame cache contract: forward(x, cache_x) with "
                               f"the previous frame as cache_x differs from the whole-clip output. Prepend cache_x "
                               f"in place of that many front padding frames (as Wan's causal conv does).")


def apply_operators(vae_like: nn.Module, arch: Architecture | str, operators: dict[str, str] | str,
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
    arch = get_architecture(arch)
    num_up = arch.num_up_blocks(vae_like)
    plan = resolve_plan(operators, arch, num_up)
    causal = arch.is_causal(vae_like)
    if collapse not in ("auto", "current", "sum"):
        raise LabError(f"collapse must be 'auto', 'current' or 'sum', got '{collapse}'.")
    params_before = arch.decoder_params(vae_like)
    paths = arch.stage_paths(num_up)

    # 1. Decide what to replace (and refuse bad requests before touching the model).
    targets: list[tuple[str, str, str, nn.Module]] = []  # (stage, path, op, layer)
    for stage, op_name in plan.items():
        if op_name == "keep":
            continue
        spec = get_operator(op_name)
        if causal and not spec.causal:
            raise LabError(f"operator '{op_name}' looks at future frames, so it cannot go into stage '{stage}' of a "
                           f"causal {arch.title} decoder (streaming would change). Pick a causal operator: dwsep3d, "
                           f"conv2plus1d or conv2d.")
        for root in paths[stage]:
            module = vae_like.get_submodule(root)
            for rel, layer in swappable_convs(module, arch):
                path = f"{root}.{rel}" if rel else root
                if isinstance(layer, SwapOp):
                    raise LabError(f"{path} was already replaced by '{layer.op_name}'; apply plans to an unswapped "
                                   f"model (reload it, or rebuild the student) instead of swapping twice.")
                targets.append((stage, path, op_name, layer))

    # 2. Real inputs of the layers whose 2D collapse is chosen by measured error.
    io = {}
    if init_from_existing and collapse == "auto" and calibration is not None:
        auto = {path: layer for _, path, op, layer in targets if get_operator(op).build is FrameConv2d}
        if auto:
            io = _capture_io(vae_like, arch, calibration, auto)

    # 3. Build, initialise, probe, install.
    rows = []
    for stage, path, op_name, layer in targets:
        spec = conv_spec(layer, causal)
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
            _check_causal(op, path, op_name, frame_cache=arch.frame_cache)
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
    summary = {"kind": arch.name, "plan": plan, "causal": causal, "replaced": rows, "stages": stages,
               "params_before": params_before, "params_after": arch.decoder_params(vae_like)}
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
    summary = apply_operators(target.vae, arch_of(target, "operator swaps"), operators, init_from_existing, z_raw, collapse)
    label = operators if isinstance(operators, str) else "swap"
    target.name = f"{decoder.name}+{label}"
    return target, summary
