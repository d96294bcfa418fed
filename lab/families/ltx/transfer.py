"""Initialise a pruned LTX-Video (or LTX-2) student (lab.families.ltx.student) from its teacher.

Per conv: fold the dropped input channels' least-squares reconstruction into the kept columns (as for
Wan, lab.prune.transfer.fold_into), keep the rows of the kept output channels (8 rows per channel for
depth-to-space upsamplers). Before that, a residual upsampler's shortcut is merged into its conv: the
shortcut adds input channel (c mod G)*8 + k to conv row c*8 + k (G = input width / 8), which is a 1x1x1
identity-selection kernel at the current-frame tap, so the merged conv computes exactly what conv plus
shortcut did, and the student's plain upsampler can read any kept channel set.

Norms: the RMS norms of pruned groups become FoldedRMSNorm (lab.models.students.folded_norm), which divide by
the teacher's full-width rms estimated from the kept channels (least-squares fit at the norm's input);
LayerNorms (shortcut norm3) get the
gain/shift of ChannelAnalysis.layernorm_affine. Per-channel tables (timestep scale/shift, noise
scales) are indexed by the kept channels of the group they act on.
"""

from __future__ import annotations

import torch
from torch import nn

from diffusers.models.autoencoders.autoencoder_kl_ltx import LTXVideoUpsampler3d

from lab.analysis import ChannelAnalysis
from lab.analysis.linalg import FOLD_RIDGE
from lab.arch.groups import D2S_FACTOR, ChannelGroup
from lab.errors import LabError
from lab.prune.transfer import _rows, fold_into, load_student_state
from lab.prune.transfer import folded_norm_state as _folded_norm  # shared with Wan students


def merged_upsampler_weight(ups: nn.Module, causal: bool | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight, bias) of an LTXVideoUpsampler3d's (or LTX-2's upsampler's) conv with its residual
    shortcut (if any) folded in. ``causal``: the decoder's setting, for LTX-2 convs (whose causality is
    a call argument); LTX-Video convs carry their own."""
    conv = ups.conv.conv
    w = conv.weight.detach().to(torch.float64).clone()
    b = None if conv.bias is None else conv.bias.detach().to(torch.float64).clone()
    if getattr(ups, "residual", False):
        factor = ups.stride[0] * ups.stride[1] * ups.stride[2]
        if factor != D2S_FACTOR:
            raise LabError(f"cannot fold a residual upsampler with stride {ups.stride}")
        kt = conv.kernel_size[0]
        causal = getattr(ups.conv, "is_causal", causal)
        if causal is None:
            raise LabError("merged_upsampler_weight needs the decoder's causal setting for an LTX-2 upsampler")
        t_now = kt - 1 if causal else (kt - 1) // 2  # the tap that reads the current frame
        hc, wc = conv.kernel_size[1] // 2, conv.kernel_size[2] // 2
        groups_in = conv.in_channels // factor
        for c in range(conv.out_channels // factor):
            for k in range(factor):
                w[c * factor + k, (c % groups_in) * factor + k, t_now, hc, wc] += 1.0
    return w, b


def transfer_ltx(teacher_vae: nn.Module, student_vae: nn.Module, groups: list[ChannelGroup],
                 kept: dict[str, list[int]], analysis: ChannelAnalysis | None, fold: bool = True,
                 ridge: float = FOLD_RIDGE, causal: bool | None = None,
                 upsamplers: tuple[type, ...] = (LTXVideoUpsampler3d,)) -> dict:
    """Copy an AutoencoderKLLTXVideo's (or LTX-2's) decoder into an LTXStudentVAE (or LTX-2's student VAE)
    built at the widths of ``kept`` (group -> kept teacher channels; groups not listed keep every channel).
    ``causal``: the decoder's setting (LTX-2; see merged_upsampler_weight). ``upsamplers``: the family's
    depth-to-space upsampler classes, whose residual shortcut is merged into their conv. LTX-2's 1x1
    shortcuts are plain ``nn.Conv3d`` (weights at ``PATH.weight``), every other conv wraps one
    (``PATH.conv.weight``). Returns a short report."""
    keep = {g.name: list(kept.get(g.name, range(g.width))) for g in groups}
    pruned = {g.name for g in groups if len(keep[g.name]) < g.width}
    consumer_of: dict[str, ChannelGroup] = {}
    producer_of: dict[str, tuple[ChannelGroup, str]] = {}
    for g in groups:
        for c in g.consumers:
            consumer_of[c.path] = g
        for path, role in g.producers:
            producer_of[path] = (g, role)

    t_state = teacher_vae.state_dict()
    new: dict[str, torch.Tensor] = {}
    report = {"folded": [], "sliced": [], "norm_scales": {}, "merged_residual": []}

    # 1. Every conv of the channel map (all of the decoder's convs).
    for path in sorted(set(consumer_of) | set(producer_of)):
        layer = teacher_vae.get_submodule(path)
        parent = teacher_vae.get_submodule(path.rpartition(".")[0])
        conv = getattr(layer, "conv", layer)  # a causal-conv wrapper, or a plain nn.Conv3d (LTX-2 shortcut)
        key = f"{path}.conv" if conv is not layer else path
        if isinstance(parent, upsamplers):
            w, b = merged_upsampler_weight(parent, causal)
            if parent.residual:
                report["merged_residual"].append(path)
        else:
            w = conv.weight.detach().to(torch.float64)
            b = None if conv.bias is None else conv.bias.detach().to(torch.float64)
        if path in consumer_of and consumer_of[path].name in pruned:
            g = consumer_of[path]
            gram = analysis.consumer_gram(path) if (fold and analysis is not None) else None
            if gram is not None:
                w, b = fold_into(w, b, gram, keep[g.name], ridge)
                report["folded"].append(path)
            else:
                w = w[:, keep[g.name]]
                report["sliced"].append(path)
        if path in producer_of:
            g, role = producer_of[path]
            rows = _rows(role, keep[g.name], w.shape[0])
            w, b = w[rows], (None if b is None else b[rows])
        new[f"{key}.weight"] = w
        if b is not None:
            new[f"{key}.bias"] = b

    # 2. Norms.
    for g in groups:
        for path in g.norms:
            norm = teacher_vae.get_submodule(path)
            idx = keep[g.name]
            if isinstance(norm, nn.LayerNorm):
                gain, shift = (analysis.layernorm_affine(path, idx) if (analysis is not None and g.name in pruned)
                               else (1.0, 0.0))
                gamma = norm.weight.detach().to(torch.float64)[idx]
                new[f"{path}.weight"] = gamma * gain
                new[f"{path}.bias"] = norm.bias.detach().to(torch.float64)[idx] + gamma * shift
                report["norm_scales"][path] = [gain, shift]
            else:  # diffusers RMSNorm, with or without its own weight
                weight = getattr(norm, "weight", None)
                new[f"{path}.weight"] = (weight.detach().to(torch.float64)[idx] if weight is not None
                                         else torch.ones(len(idx), dtype=torch.float64))
                if g.name in pruned:
                    new.update(_folded_norm(analysis, path, idx, g.width, ridge))
                    report["norm_scales"][path] = "folded"

    # 3. Per-channel tables of each resnet (timestep scale/shift, noise scales) and of the output.
    for path, g_in in consumer_of.items():
        if not path.endswith(".conv1"):
            continue
        rp = path[: -len(".conv1")]
        r = teacher_vae.get_submodule(rp)
        hidden = producer_of[f"{rp}.conv1"][0]
        out = producer_of[f"{rp}.conv2"][0]
        if r.scale_shift_table is not None:
            table = r.scale_shift_table.detach().to(torch.float64)
            new[f"{rp}.shift_scale_1"] = table[0:2][:, keep[g_in.name]]
            new[f"{rp}.shift_scale_2"] = table[2:4][:, keep[hidden.name]]
        if r.per_channel_scale1 is not None:
            new[f"{rp}.per_channel_scale1"] = r.per_channel_scale1.detach()[keep[hidden.name]]
            new[f"{rp}.per_channel_scale2"] = r.per_channel_scale2.detach()[keep[out.name]]
    dec = teacher_vae.decoder
    if getattr(dec, "scale_shift_table", None) is not None:
        last = consumer_of["decoder.conv_out"]
        new["decoder.scale_shift_table"] = dec.scale_shift_table.detach()[:, keep[last.name]]

    # 4. Load: computed tensors, else the teacher's tensor of the same name (time embedders, ...).
    load_student_state(student_vae, t_state, new,
                       missing="build the student from this teacher (lab.prune.prune).")
    return report
