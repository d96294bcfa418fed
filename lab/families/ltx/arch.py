"""LTX-Video's structure: diffusers' ``AutoencoderKLLTXVideo`` (0.9 and later, the lab's mini-ltx, tiny test
configs) and the lab's pruned students of it.

The decoder sees all latent frames at once (non-causal unless ``decoder_causal``); its up blocks change
width with a ``conv_in`` resnet and upsample with depth-to-space convs (8 conv rows per channel); models
from 0.9.1 on are conditioned on the decode timestep.
"""

from __future__ import annotations

import torch
from diffusers.models.autoencoders.autoencoder_kl_ltx import LTXVideoCausalConv3d, LTXVideoUpsampler3d
from torch import nn

from lab.arch import register_architecture
from lab.arch.base import Architecture
from lab.arch.groups import D2S_FACTOR, ChannelGroup, Consumer
from lab.errors import LabError


class LTXArchitecture(Architecture):
    name = "ltx"
    title = "LTX-Video"
    tiny_teacher = "ltx-video-tiny"
    flash_vaed_ratio = 0.25  # Flash-VAED section 1.3: up2 and up3 at 25%
    # Flash-VAED section 1.2; up2 keeps its layers (LTX's up2 is cheap next to up3).
    plans = {"flash-vaed": {"mid": "dwsep3d", "up0": "dwsep3d", "up1": "dwsep3d", "up2": "keep", "up3": "conv2d"},
             "keep": {}}
    causal_convs = (LTXVideoCausalConv3d,)
    kept_subtrees = (LTXVideoUpsampler3d,)  # depth-to-space convs (the 0.9 VAE has no attention)
    frame_cache = False
    pipeline_api = "ltx"

    def stage_paths(self, num_up_blocks: int) -> dict[str, list[str]]:
        ups = {f"up{i}": [f"decoder.up_blocks.{i}"] for i in range(num_up_blocks)}
        return {"conv_in": ["decoder.conv_in"], "mid": ["decoder.mid_block"], **ups,
                "head": ["decoder.norm_out", "decoder.conv_out"]}

    def owns(self, vae: nn.Module) -> bool:
        # diffusers' AutoencoderKLLTXVideo or a lab student of it (exact classes: LTX-2's subclass the student)
        return type(vae).__name__ in ("AutoencoderKLLTXVideo", "LTXStudentVAE")

    def is_causal(self, vae: nn.Module) -> bool:
        return bool(getattr(vae.decoder.conv_in, "is_causal", False))

    # LTX keeps its latent statistics in buffers (latents_mean, latents_std) beside config.scaling_factor;
    # its pipelines read them there. (A student keeps them as lists in its teacher_config.)
    def latent_stats(self, vae: nn.Module) -> tuple[list[float], list[float], float]:
        return (vae.latents_mean.float().cpu().tolist(), vae.latents_std.float().cpu().tolist(),
                float(vae.config.scaling_factor))

    def set_latent_stats(self, vae: nn.Module, mean: list[float], std: list[float]) -> None:
        vae.latents_mean.copy_(torch.tensor(mean))
        vae.latents_std.copy_(torch.tensor(std))

    def prune_groups(self, vae: nn.Module) -> list[ChannelGroup]:
        return ltx_groups(vae)

    def stage_output_group(self, stage: str, group_names: list[str], num_up_blocks: int) -> str | None:
        """The last residual stream the stage creates, or (a stage that neither changes width nor
        upsamples) the stream it was handed."""
        order = ["mid"] + sorted({g.split(".")[0] for g in group_names if g.startswith("up")},
                                 key=lambda u: int(u[2:]))
        if stage not in order:
            return None
        for s in reversed(order[:order.index(stage) + 1]):
            streams = [g for g in group_names if g.startswith(f"{s}.") and g.endswith(".stream")]
            if streams:
                return streams[-1]
        return None

    def decode_raw(self, vae: nn.Module, z: torch.Tensor, decode_timestep: float = 0.0) -> torch.Tensor:
        """Timestep-conditioned models decode at ``decode_timestep`` (the pipelines' default 0.0, no
        added noise); the others take no conditioning."""
        temb = None
        if vae.config.timestep_conditioning:
            temb = torch.full((z.shape[0],), decode_timestep, device=z.device, dtype=z.dtype)
        return vae.decode(z, temb).sample


LTX = register_architecture(LTXArchitecture())


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
    """The channel groups of an LTX-Video decoder (``AutoencoderKLLTXVideo`` or a lab student of it); also
    of LTX-2's (whose blocks have the same structure, lab.families.ltx2).

    The residual stream starts at ``decoder.conv_in`` (group ``mid.stream``) and runs through the mid
    block and every up block that neither changes width nor upsamples (up0 in LTX-Video 0.9). An up
    block's ``conv_in`` resnet (width change) writes a new group (``up{i}.in`` if an upsampler follows,
    else ``up{i}.stream``); its depth-to-space upsampler writes ``up{i}.stream`` (8 conv rows per
    channel; a residual upsampler's shortcut is a fixed linear map of its input, which pruning folds
    into the conv). Each resnet's conv1 output is a ``...hidden`` group. The last stream is read by
    norm_out -> conv_out. A group belongs to the stage that creates it; every group is prunable.
    Timestep-conditioning tables and noise scales are per-channel vectors of these same groups (the
    student indexes them; see lab.families.ltx.student).
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
