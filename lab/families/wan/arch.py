"""Wan 2.1's structure: diffusers' ``AutoencoderKLWan`` (the released VAE, the lab's mini-wan, tiny test
configs) and the lab's pruned students of it.

A causal decoder that runs one latent frame per step with a cache of the last two input frames of
every causal conv (``forward(x, cache_x)``); its stages are ``post_quant_conv``+``conv_in``, the mid
block (with attention), four up blocks (the first three upsample, in time too from the second), and
the head.
"""

from __future__ import annotations

from diffusers.models.autoencoders.autoencoder_kl_wan import WanAttentionBlock, WanCausalConv3d, WanResample
from torch import nn

from lab.arch import register_architecture
from lab.arch.base import Architecture
from lab.arch.groups import ChannelGroup, Consumer
from lab.errors import LabError


class WanArchitecture(Architecture):
    name = "wan"
    title = "Wan 2.1"
    flash_vaed_ratio = 0.125  # Flash-VAED section 1.3: up2 and up3 at 12.5%
    # Flash-VAED section 1.2: depthwise-separable 3D convs in the low-resolution stages, per-frame 2D
    # convs in the two high-resolution ones.
    plans = {"flash-vaed": {"mid": "dwsep3d", "up0": "dwsep3d", "up1": "dwsep3d", "up2": "conv2d", "up3": "conv2d"},
             "keep": {}}
    causal_convs = (WanCausalConv3d,)
    kept_subtrees = (WanResample, WanAttentionBlock)  # temporal upsampling convs and attention
    frame_cache = True
    pipeline_api = "wan"
    tiny_teacher = "wan2.1-tiny"

    def stage_paths(self, num_up_blocks: int) -> dict[str, list[str]]:
        ups = {f"up{i}": [f"decoder.up_blocks.{i}"] for i in range(num_up_blocks)}
        return {"conv_in": ["post_quant_conv", "decoder.conv_in"], "mid": ["decoder.mid_block"], **ups,
                "head": ["decoder.norm_out", "decoder.conv_out"]}

    def owns(self, vae: nn.Module) -> bool:
        # diffusers' AutoencoderKLWan (not the residual Wan 2.2 one) or a lab student of it
        return type(vae).__name__ in ("AutoencoderKLWan", "WanStudentVAE") and not getattr(
            getattr(vae, "config", None), "is_residual", False)

    def decoder_parts(self, vae: nn.Module) -> list[nn.Module]:
        return [vae.post_quant_conv, vae.decoder]

    def encoder_parts(self, vae: nn.Module) -> list[nn.Module]:
        return [vae.encoder, vae.quant_conv]

    def is_causal(self, vae: nn.Module) -> bool:
        return True

    def prune_groups(self, vae: nn.Module) -> list[ChannelGroup]:
        return wan_groups(vae)

    def unprunable_reason(self, stage: str) -> str:
        if stage in ("conv_in", "mid", "up0"):
            return "conv_in, mid and up0 share one residual stream with the mid attention, whose widths are tied to it"
        return super().unprunable_reason(stage)

    def stage_output_group(self, stage: str, group_names: list[str], num_up_blocks: int) -> str | None:
        if not stage.startswith("up"):
            return None
        i = int(stage[2:])
        if i == num_up_blocks - 1:
            return f"up{i}.stream"
        return f"up{i + 1}.in" if f"up{i + 1}.in" in group_names else f"up{i + 1}.stream"

    def reset(self, vae: nn.Module) -> None:
        vae.clear_cache()  # the frame cache holds tensors of the layers that were just replaced

    # Wan keeps its latent statistics as lists in the VAE's config (its pipelines read them there).
    def latent_stats(self, vae: nn.Module) -> tuple[list[float], list[float], float]:
        return list(vae.config.latents_mean), list(vae.config.latents_std), 1.0

    def set_latent_stats(self, vae: nn.Module, mean: list[float], std: list[float]) -> None:
        vae.register_to_config(latents_mean=[round(v, 5) for v in mean], latents_std=[round(v, 5) for v in std])


WAN = register_architecture(WanArchitecture())


def wan_groups(vae: nn.Module) -> list[ChannelGroup]:
    """The channel groups of a Wan 2.1-style decoder (``AutoencoderKLWan`` or a lab student of it).

    Stages up1..upN are prunable. conv_in, mid and up0 share one residual stream that also feeds the
    mid attention, whose q/k/v widths are tied to it, so they are listed (for analysis) but marked
    not prunable; the head has no channels of its own (it reads the last stage's stream).
    """
    dec = vae.decoder
    if type(dec.up_blocks[0]).__name__ != "WanUpBlock":
        raise LabError("Wan 2.1 channel groups are defined for WanUpBlock decoders; this decoder uses "
                       f"{type(dec.up_blocks[0]).__name__} (Wan 2.2 residual up blocks): load it as a Wan 2.2 "
                       "teacher (catalog entry wan2.2, --weights FOLDER), whose family (lab.families.wan.v22) prunes it.")
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
