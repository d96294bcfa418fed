"""Channel groups: the sets of layers that must be pruned together, listed explicitly per decoder
family (generic tracers hang on Wan's cached causal decoder, and an explicit list is inspectable).

A group is one channel space, e.g. the residual stream of a stage. It names
- ``producers``: layers whose output rows write these channels (role 'rows', or 'rows_paired' for
  Wan's temporal upsampler, whose 2C outputs are two frames of the same C channels);
- ``norms``: RMS norms whose gamma is indexed by these channels (the path of the norm);
- ``consumers``: layers whose input columns read these channels, each with the norm (if any) that is
  applied between the channels and the layer. The tensor a consumer actually sees is what analysis
  records (a forward pre-hook on the consumer), so least-squares folds are fitted on real inputs.

``channel_groups(decoder)`` lists them; ``taps(groups)`` says what to record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from lab.errors import LabError


@dataclass(frozen=True)
class Consumer:
    path: str
    norm: str | None = None  # the RMS norm applied (then SiLU) between the group and this layer


@dataclass
class ChannelGroup:
    name: str
    stage: str
    width: int
    # (path, role): 'rows' (output rows are the channels), 'rows_paired' (Wan's temporal upsampler: its
    # 2C outputs are two frames of the same C channels), 'rows_d2s' (LTX depth-to-space upsampler: rows
    # c*8 .. c*8+7 are the 2x2x2 sub-positions of channel c)
    producers: list[tuple[str, str]] = field(default_factory=list)
    norms: list[str] = field(default_factory=list)  # RMS norms and LayerNorms over these channels
    consumers: list[Consumer] = field(default_factory=list)
    prunable: bool = True
    note: str = ""

    def describe(self) -> dict:
        return {"name": self.name, "stage": self.stage, "width": self.width, "prunable": self.prunable,
                "producers": [f"{p} ({r})" for p, r in self.producers], "norms": list(self.norms),
                "consumers": [c.path + (f" (after {c.norm})" if c.norm else "") for c in self.consumers],
                **({"note": self.note} if self.note else {})}


def consumer_tap(path: str) -> str:
    """Name under which the input of a consumer layer is recorded."""
    return f"in:{path}"


def norm_tap(path: str) -> str:
    return f"norm:{path}"


def taps(groups: list[ChannelGroup], root: nn.Module | None = None) -> dict[str, tuple[str, bool]]:
    """tap name -> (module path, diag_only). Consumers get a full Gram; RMS norms and LayerNorms get a
    full Gram when ``root`` is given (see lab.models.students.folded_norm and
    ChannelAnalysis.layernorm_affine), else second moments only."""
    out: dict[str, tuple[str, bool]] = {}
    for g in groups:
        for c in g.consumers:
            out[consumer_tap(c.path)] = (c.path, False)
        for n in g.norms:
            # LTX's LayerNorm (shortcut), LTX's RMSNorm and Wan's WanRMS_norm, whose pruned forms
            # estimate the full channels' energy from the kept ones (both need the off-diagonal terms).
            full = root is not None and (isinstance(root.get_submodule(n), nn.LayerNorm)
                                         or type(root.get_submodule(n)).__name__ in ("RMSNorm", "WanRMS_norm"))
            out[norm_tap(n)] = (n, not full)
    return out


# ----- Wan ----------------------------------------------------------------------------------------
def wan_groups(vae: nn.Module) -> list[ChannelGroup]:
    """The channel groups of a Wan 2.1-style decoder (``AutoencoderKLWan`` or a lab student of it).

    Stages up1..upN are prunable. conv_in, mid and up0 share one residual stream that also feeds the
    mid attention, whose q/k/v widths are tied to it, so they are listed (for analysis) but marked
    not prunable; the head has no channels of its own (it reads the last stage's stream).
    """
    dec = vae.decoder
    if type(dec.up_blocks[0]).__name__ != "WanUpBlock":
        raise LabError("channel groups are defined for Wan 2.1 decoders (WanUpBlock); this decoder uses "
                       f"{type(dec.up_blocks[0]).__name__} (Wan 2.2 residual up blocks), which the lab cannot "
                       "prune yet.")
    groups: list[ChannelGroup] = []
    n_up = len(dec.up_blocks)

    def stream_width(i: int) -> int:
        return dec.up_blocks[i].resnets[-1].conv2.out_channels

    # Stage-0 stream (conv_in -> mid -> up0): analysis only.
    mid = ChannelGroup("up0.stream", "up0", dec.conv_in.out_channels, prunable=False,
                       note="shared by conv_in, mid (with attention) and up0; kept at full width")
    for j, r in enumerate(dec.mid_block.resnets):
        mid.consumers.append(Consumer(f"decoder.mid_block.resnets.{j}.conv1", f"decoder.mid_block.resnets.{j}.norm1"))
    for j, r in enumerate(dec.up_blocks[0].resnets):
        if isinstance(r.conv_shortcut, nn.Identity):
            mid.consumers.append(Consumer(f"decoder.up_blocks.0.resnets.{j}.conv1",
                                          f"decoder.up_blocks.0.resnets.{j}.norm1"))
    groups.append(mid)

    for i in range(n_up):
        blk = dec.up_blocks[i]
        p = f"decoder.up_blocks.{i}"
        prunable = i >= 1
        stream = ChannelGroup(f"up{i}.stream", f"up{i}", stream_width(i), prunable=prunable)
        if i == 0:
            stream = groups[0]  # up0's stream is the shared one above
        in_group = None
        if i >= 1:
            prev_up = f"decoder.up_blocks.{i - 1}.upsamplers.0.resample.1"
            if isinstance(blk.resnets[0].conv_shortcut, nn.Identity):
                stream.producers.append((prev_up, "rows"))
            else:
                in_group = ChannelGroup(f"up{i}.in", f"up{i}", blk.resnets[0].conv1.in_channels,
                                        producers=[(prev_up, "rows")],
                                        note=f"output of up{i - 1}'s upsampler, input of up{i}")
                groups.append(in_group)
        for j, r in enumerate(blk.resnets):
            rp = f"{p}.resnets.{j}"
            src = stream
            if not isinstance(r.conv_shortcut, nn.Identity):
                src = in_group if in_group is not None else src
                if i >= 1:
                    src.consumers.append(Consumer(f"{rp}.conv_shortcut"))
                stream.producers.append((f"{rp}.conv_shortcut", "rows"))
            if i >= 1:
                src.consumers.append(Consumer(f"{rp}.conv1", f"{rp}.norm1"))
                src.norms.append(f"{rp}.norm1")
                stream.producers.append((f"{rp}.conv2", "rows"))
            hidden = ChannelGroup(f"up{i}.res{j}.hidden", f"up{i}", r.conv1.out_channels, prunable=prunable,
                                  producers=[(f"{rp}.conv1", "rows")], norms=[f"{rp}.norm2"],
                                  consumers=[Consumer(f"{rp}.conv2", f"{rp}.norm2")])
            groups.append(hidden)
        if blk.upsamplers is not None:
            up = blk.upsamplers[0]
            if up.mode not in ("upsample2d", "upsample3d"):
                raise LabError(f"{p}.upsamplers.0 has mode '{up.mode}', which a decoder should not contain")
            if i >= 1:
                if up.mode == "upsample3d":
                    # Frame 0 skips time_conv, so the resample conv reads the stream itself on the first
                    # chunk and time_conv's outputs later: both must use the stream's channel set.
                    stream.consumers.append(Consumer(f"{p}.upsamplers.0.time_conv"))
                    stream.producers.append((f"{p}.upsamplers.0.time_conv", "rows_paired"))
                stream.consumers.append(Consumer(f"{p}.upsamplers.0.resample.1"))
        elif i == n_up - 1 and i >= 1:
            stream.consumers.append(Consumer("decoder.conv_out", "decoder.norm_out"))
            stream.norms.append("decoder.norm_out")
        if i >= 1:
            groups.append(stream)
    # Keep a stable, readable order: by stage, then stream/in first.
    order = {f"up{i}": i for i in range(n_up)}
    groups.sort(key=lambda g: (order[g.stage], 0 if g.name.endswith(".in") else 1 if g.name.endswith(".stream") else 2,
                               g.name))
    return groups


# ----- LTX-Video ----------------------------------------------------------------------------------
D2S_FACTOR = 8  # LTX upsamplers: stride (2, 2, 2), so 8 conv rows per output channel


def _ltx_resnet(groups: list[ChannelGroup], rp: str, r: nn.Module, src: ChannelGroup, dst: ChannelGroup,
                hidden_name: str, stage: str) -> None:
    """Wire one LTX resnet (norm1 -> SiLU -> conv1 -> norm2 -> SiLU -> conv2, plus an optional
    norm3 (LayerNorm) -> conv_shortcut) between its input group ``src`` and output group ``dst``."""
    src.consumers.append(Consumer(f"{rp}.conv1", f"{rp}.norm1"))
    src.norms.append(f"{rp}.norm1")
    groups.append(ChannelGroup(hidden_name, stage, r.conv1.out_channels, producers=[(f"{rp}.conv1", "rows")],
                               norms=[f"{rp}.norm2"], consumers=[Consumer(f"{rp}.conv2", f"{rp}.norm2")]))
    dst.producers.append((f"{rp}.conv2", "rows"))
    if r.conv_shortcut is not None:
        norm = f"{rp}.norm3" if getattr(r, "norm3", None) is not None else None
        src.consumers.append(Consumer(f"{rp}.conv_shortcut", norm))
        if norm:
            src.norms.append(norm)
        dst.producers.append((f"{rp}.conv_shortcut", "rows"))
    elif src is not dst:
        raise LabError(f"{rp} has an identity shortcut but reads and writes different channel groups "
                       f"({src.name}, {dst.name}); the LTX channel map is inconsistent.")


def ltx_groups(vae: nn.Module) -> list[ChannelGroup]:
    """The channel groups of an LTX-Video decoder (``AutoencoderKLLTXVideo`` or a lab student of it).

    The residual stream starts at ``decoder.conv_in`` (group ``mid.stream``) and runs through the mid
    block and every up block that neither changes width nor upsamples (up0 in LTX-Video 0.9). An up
    block's ``conv_in`` resnet (width change) writes a new group (``up{i}.in`` if an upsampler follows,
    else ``up{i}.stream``); its depth-to-space upsampler writes ``up{i}.stream`` (8 conv rows per
    channel; a residual upsampler's shortcut is a fixed linear map of its input, which pruning folds
    into the conv). Each resnet's conv1 output is a ``...hidden`` group. The last stream is read by
    norm_out -> conv_out. A group belongs to the stage that creates it; every group is prunable.
    Timestep-conditioning tables and noise scales are per-channel vectors of these same groups (the
    student indexes them; see lab.models.students.ltx).
    """
    dec = vae.decoder
    groups: list[ChannelGroup] = []
    stream = ChannelGroup("mid.stream", "mid", dec.conv_in.out_channels, producers=[("decoder.conv_in", "rows")],
                          note="conv_in output; the residual stream of mid (and of up blocks that keep its width)")
    groups.append(stream)
    for j, r in enumerate(dec.mid_block.resnets):
        _ltx_resnet(groups, f"decoder.mid_block.resnets.{j}", r, stream, stream, f"mid.res{j}.hidden", "mid")
    for i, blk in enumerate(dec.up_blocks):
        p, stage = f"decoder.up_blocks.{i}", f"up{i}"
        ups = blk.upsamplers[0] if blk.upsamplers is not None else None
        if blk.conv_in is not None:
            new = ChannelGroup(f"{stage}.in" if ups is not None else f"{stage}.stream", stage,
                               blk.conv_in.conv2.out_channels,
                               note="output of the width-changing conv_in resnet" + (", input of the upsampler"
                                                                                    if ups is not None else ""))
            groups.append(new)
            _ltx_resnet(groups, f"{p}.conv_in", blk.conv_in, stream, new, f"{stage}.conv_in.hidden", stage)
            stream = new
        if ups is not None:
            conv = ups.conv.conv if hasattr(ups.conv, "conv") else ups.conv
            stride = tuple(ups.stride)
            if stride != (2, 2, 2):
                raise LabError(f"{p}.upsamplers.0 has stride {stride}; the LTX channel map knows (2, 2, 2) only")
            stream.consumers.append(Consumer(f"{p}.upsamplers.0.conv"))
            new = ChannelGroup(f"{stage}.stream", stage, conv.out_channels // D2S_FACTOR,
                               producers=[(f"{p}.upsamplers.0.conv", "rows_d2s")],
                               note="depth-to-space upsampler output; the stage's residual stream")
            groups.append(new)
            stream = new
        for j, r in enumerate(blk.resnets):
            _ltx_resnet(groups, f"{p}.resnets.{j}", r, stream, stream, f"{stage}.res{j}.hidden", stage)
    stream.consumers.append(Consumer("decoder.conv_out", "decoder.norm_out"))
    stream.norms.append("decoder.norm_out")
    return groups


# ----- any decoder --------------------------------------------------------------------------------
def generic_groups(vae: nn.Module, kind: str) -> list[ChannelGroup]:
    """Analysis-only groups for decoders without an explicit prune map (LTX, swapped students): the
    input of every conv with a spatial or temporal kernel, per stage."""
    from lab.models.stages import stage_paths

    groups = []
    for stage, roots in stage_paths(kind, len(vae.decoder.up_blocks)).items():
        for root in roots:
            module = vae.get_submodule(root)
            for rel, m in module.named_modules():
                if isinstance(m, (nn.Conv2d, nn.Conv3d)) and m.in_channels > 1 and m.groups == 1:
                    path = f"{root}.{rel}" if rel else root
                    groups.append(ChannelGroup(f"{stage}:{path}", stage, m.in_channels, prunable=False,
                                               consumers=[Consumer(path)], note="input of one conv (analysis only)"))
    return groups


def channel_groups(decoder) -> list[ChannelGroup]:
    """The groups of a decoder adapter (teacher or student)."""
    from lab.models.stages import stage_kind

    kind = getattr(decoder, "adapter_kind", "")
    base = stage_kind(decoder) or kind
    if base == "wan" and not _is_swapped(decoder.vae):
        return wan_groups(decoder.vae)
    if base == "ltx" and not _is_swapped(decoder.vae):
        return ltx_groups(decoder.vae)
    if base in ("wan", "ltx"):
        return generic_groups(decoder.vae, base)
    raise LabError(f"{decoder.name}: no channel groups for decoders of kind '{kind}' (known: wan, ltx and "
                   f"their students).")


def _is_swapped(vae: nn.Module) -> bool:
    # A swapped model's convs are no longer the diffusers classes the Wan map names.
    return any(type(m).__name__ in ("WanResidualBlock", "LTXVideoResnetBlock3d", "LTXStudentResnetBlock3d")
               and type(m.conv1).__name__ not in ("WanCausalConv3d", "LTXVideoCausalConv3d")
               for m in vae.decoder.modules())
