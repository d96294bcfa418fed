"""Pruned LTX-2 students: diffusers' ``LTX2VideoDecoder3d`` (with its own mid/up block, upsampler,
causal-conv and timestep-embedding classes) at the widths a pruning plan chose, with the same module
paths as ``AutoencoderKLLTX2Video.decoder``, so the stage map, hooks, the channel map
(lab.families.ltx.arch.ltx_groups) and operator swaps apply to it unchanged.

Why classes of their own rather than the LTX-Video student's (lab.families.ltx.student), although the channel
map and the weight transfer (lab.families.ltx.transfer) are shared: LTX-2's blocks pass ``causal`` to every conv
at call time (``LTX2VideoCausalConv3d.forward(x, causal)``), pad space with 'reflect', normalise
channels-first with weightless ``PerChannelRMSNorm``s and use a plain ``nn.Conv3d`` shortcut; the
LTX-Video student is built on ``LTXVideoDecoder3d``, whose blocks call ``conv(x)`` and whose norms are
channels-last. Everything else is the LTX-Video student's: the classes here subclass or call its
(resnet build and forward, decoder narrowing, config checks, adapter), and this module holds only what
differs. What differs from the teacher is what differs in the LTX-Video student:
- resnets are ``LTX2StudentResnetBlock3d``, with separate input, hidden and output widths; with timestep
  conditioning they gather the conditioning of their kept channels from the (full-width) block time
  embedder by index;
- RMS norms carry a per-channel weight (ones from a weightless teacher), and the norms of pruned groups
  are folded (``LTX2FoldedRMSNorm``: they divide by the teacher's full-width rms estimated from the kept
  channels, see lab.models.students.folded_norm);
- upsamplers are never residual: the residual shortcut is folded into the depth-to-space conv by pruning
  (exact), so the student's upsampler reads any kept channel set.

Widths are per channel group (``mid.stream``, ``up{i}.stream``, ``mid.res{j}.hidden``,
``up{i}.res{j}.hidden``; ``up{i}.in`` / ``up{i}.conv_in.hidden`` for configs with width-changing resnets);
groups not listed keep the teacher's width; ``kept`` lists the teacher channel indices of each group.
"""

from __future__ import annotations

import torch
from diffusers.models.autoencoders.autoencoder_kl_ltx2 import LTX2VideoCausalConv3d, LTX2VideoDecoder3d
from diffusers.models.autoencoders.vae import DecoderOutput
from torch import nn

from lab.families.ltx.student import (LTXStudentAdapter, LTXStudentResnetBlock3d, LTXStudentVAE, condition_output,
                                      narrow_decoder, skeleton_widths, unpatchify)
from lab.families.ltx2.arch import LTX2
from lab.families.ltx2.teacher import LTX2Stream, ltx2_geometry
from lab.models.registry import register_adapter
from lab.models.students.folded_norm import _apply_keeping_form_fp32, _fp32, _init_form, folded_mean_square

# The AutoencoderKLLTX2Video config keys the decoder and latent normalisation depend on (latents_mean /
# latents_std are buffers in the teacher; the student keeps them in this config as lists).
TEACHER_KEYS = ("latent_channels", "out_channels", "decoder_block_out_channels", "decoder_layers_per_block",
                "decoder_spatio_temporal_scaling", "decoder_inject_noise", "upsample_type", "upsample_residual",
                "upsample_factor", "timestep_conditioning", "patch_size", "patch_size_t", "resnet_norm_eps",
                "decoder_causal", "decoder_spatial_padding_mode", "scaling_factor", "spatial_compression_ratio",
                "temporal_compression_ratio", "latents_mean", "latents_std")
_REQUIRED = ("latent_channels", "decoder_block_out_channels", "decoder_layers_per_block")


def decoder_kwargs(tc: dict) -> dict:
    """LTX2VideoDecoder3d arguments from an AutoencoderKLLTX2Video config (as the VAE passes them;
    missing keys take the VAE's defaults)."""
    n = len(tc["decoder_block_out_channels"])

    def per_block(key, default, count):
        v = tc.get(key, default)
        return (v,) * count if isinstance(v, bool) else tuple(v)

    return {"in_channels": tc["latent_channels"], "out_channels": tc.get("out_channels", 3),
            "block_out_channels": tuple(tc["decoder_block_out_channels"]),
            "spatio_temporal_scaling": per_block("decoder_spatio_temporal_scaling", True, n),
            "layers_per_block": tuple(tc["decoder_layers_per_block"]),
            "upsample_type": tuple(tc.get("upsample_type") or ("spatiotemporal",) * n),
            "patch_size": tc.get("patch_size", 4), "patch_size_t": tc.get("patch_size_t", 1),
            "resnet_norm_eps": tc.get("resnet_norm_eps", 1e-6), "is_causal": bool(tc.get("decoder_causal", True)),
            "inject_noise": per_block("decoder_inject_noise", False, n + 1),
            "timestep_conditioning": bool(tc.get("timestep_conditioning", False)),
            "upsample_residual": per_block("upsample_residual", True, n),
            "upsample_factor": tuple(tc.get("upsample_factor") or (2,) * n),
            "spatial_padding_mode": tc.get("decoder_spatial_padding_mode", "reflect")}


def teacher_decoder_skeleton(tc: dict) -> LTX2VideoDecoder3d:
    """The teacher's decoder on the meta device: its structure (and channel map) at no memory cost."""
    with torch.device("meta"):
        return LTX2VideoDecoder3d(**decoder_kwargs(tc))


def teacher_widths(tc: dict) -> dict[str, int]:
    """Group name -> width in the teacher (what a student of it may shrink)."""
    return skeleton_widths(teacher_decoder_skeleton(tc))


class LTX2RMSNorm(nn.Module):
    """Channels-first RMS norm with a per-channel weight: ``PerChannelRMSNorm`` (x / sqrt(mean_c x^2 +
    eps)) times ``weight``."""

    def __init__(self, dim: int, eps: float = 1e-8):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ms = torch.mean(x ** 2, dim=1, keepdim=True)
        return x / torch.sqrt(ms + self.eps) * self.weight.view(1, -1, *([1] * (x.dim() - 2)))


class LTX2FoldedRMSNorm(LTX2RMSNorm):
    """Channels-first folded RMS norm (lab.models.students.folded_norm): divides by the teacher's
    full-width rms estimated from the kept channels; computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-8):
        super().__init__(dim, eps)
        _init_form(self, dim)

    def _apply(self, fn, recurse=True):
        return _apply_keeping_form_fp32(self, super()._apply, fn, recurse)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with _fp32(x):
            last = x.float().movedim(1, -1)
            inv = torch.rsqrt(folded_mean_square(last, self.quad, self.lin, self.const) + self.eps)
            return ((last * inv * self.weight.float()).movedim(-1, 1)).to(x.dtype)


def _rms_norm(dim: int, folded: bool) -> nn.Module:
    return LTX2FoldedRMSNorm(dim) if folded else LTX2RMSNorm(dim)


class LTX2StudentResnetBlock3d(LTXStudentResnetBlock3d):
    """LTX-2's resnet (norm1 -> [scale/shift] -> SiLU -> conv1 -> [noise] -> norm2 -> [scale/shift] -> SiLU
    -> conv2 -> [noise], plus an optional LayerNorm -> 1x1 conv shortcut) with separate input, hidden and
    output widths; submodule names as diffusers' ``LTX2VideoResnetBlock3d``, and its ``forward(inputs,
    temb, generator, causal)``. ``temb_index_1`` / ``temb_index_2`` pick the entries of the kept input /
    hidden channels from the block embedder's full-width output (4 chunks of the teacher's width).
    The LTX-Video block with LTX-2's convs (reflect padding, causal per call), channels-first norms and a
    plain ``nn.Conv3d`` shortcut."""

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, shortcut: bool,
                 eps: float = 1e-6, inject_noise: bool = False, temb_index_1: torch.Tensor | None = None,
                 temb_index_2: torch.Tensor | None = None, folded_norms: tuple[bool, bool] = (False, False),
                 spatial_padding_mode: str = "reflect"):
        nn.Module.__init__(self)
        self._build(in_channels, hidden_channels, out_channels, shortcut, eps, inject_noise, temb_index_1,
                    temb_index_2, folded_norms, norm=_rms_norm,
                    conv=lambda cin, cout: LTX2VideoCausalConv3d(cin, cout, kernel_size=3,
                                                                 spatial_padding_mode=spatial_padding_mode),
                    shortcut_conv=lambda cin, cout: nn.Conv3d(cin, cout, kernel_size=1))

    def _norm(self, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return norm(x)  # LTX-2's norms are channels-first

    def _conv(self, conv: nn.Module, x: torch.Tensor, causal: bool) -> torch.Tensor:
        return conv(x, causal=causal)


class LTX2StudentDecoder3d(LTX2VideoDecoder3d):
    """``LTX2VideoDecoder3d`` at per-group widths. Built as the teacher's skeleton on the meta device,
    then every layer with parameters is rebuilt for real at its student width (so a full-size teacher
    is never allocated)."""

    def __init__(self, tc: dict, widths: dict[str, int], index: dict[str, torch.Tensor], full: dict[str, int]):
        kw = decoder_kwargs(tc)
        with torch.device("meta"):
            super().__init__(**kw)
        pm = kw["spatial_padding_mode"]

        def block(cin, hidden, cout, shortcut, eps, inject, temb_index_1, temb_index_2, folded):
            return LTX2StudentResnetBlock3d(cin, hidden, cout, shortcut, eps, inject, temb_index_1, temb_index_2,
                                            folded, pm)

        def conv(cin, cout):
            return LTX2VideoCausalConv3d(cin, cout, kernel_size=3, spatial_padding_mode=pm)

        narrow_decoder(self, kw, widths, index, full, block, conv, _rms_norm, "LTX-2")

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor | None = None,
                causal: bool | None = None) -> torch.Tensor:
        # diffusers' LTX2VideoDecoder3d.forward, except that the output scale/shift is gathered for the
        # kept channels of the last stream (see LTX2StudentResnetBlock3d).
        causal = causal or self.is_causal
        hidden_states = self.conv_in(hidden_states, causal=causal)
        if self.timestep_scale_multiplier is not None:
            temb = temb * self.timestep_scale_multiplier
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            hidden_states = self._gradient_checkpointing_func(self.mid_block, hidden_states, temb, None, causal)
            for up_block in self.up_blocks:
                hidden_states = self._gradient_checkpointing_func(up_block, hidden_states, temb, None, causal)
        else:
            hidden_states = self.mid_block(hidden_states, temb, causal=causal)
            for up_block in self.up_blocks:
                hidden_states = up_block(hidden_states, temb, causal=causal)
        hidden_states = self.norm_out(hidden_states)
        hidden_states = condition_output(self, hidden_states, temb)
        hidden_states = self.conv_out(self.conv_act(hidden_states), causal=causal)
        return unpatchify(self, hidden_states)


class LTX2StudentVAE(LTXStudentVAE):
    """A narrower LTX-2 decoder (no encoder). Config records where it came from. The LTX-Video student VAE
    (same config keys and checks) with LTX-2's decoder, and its ``decode(z, temb, causal)``."""

    config_name = "config.json"
    _decoder_class = LTX2StudentDecoder3d
    _arch = LTX2
    _teacher_widths = staticmethod(teacher_widths)
    _required = _REQUIRED
    _teacher_class = "AutoencoderKLLTX2Video"

    def decode(self, z: torch.Tensor, temb: torch.Tensor | None = None, causal: bool | None = None,
               return_dict: bool = True):
        """Raw (denormalised) latents -> video, unclamped (as AutoencoderKLLTX2Video.decode without tiling)."""
        out = self.decoder(z, temb, causal=causal)
        return DecoderOutput(sample=out) if return_dict else (out,)


class LTX2StudentAdapter(LTXStudentAdapter):
    """A pruned (and optionally operator-swapped) LTX-2 student behind the lab's decoder interface. Like its
    teacher it is causal (and streams) when the teacher's decoder is, and decodes conditioned models at
    ``decode_timestep``."""

    vae_class = LTX2StudentVAE
    adapter_kind = "ltx-2-student"
    arch = LTX2
    _geometry = staticmethod(ltx2_geometry)

    def __init__(self, name: str, vae: LTX2StudentVAE, decode_timestep: float = 0.0):
        super().__init__(name, vae, decode_timestep)
        self.causal = LTX2.is_causal(vae)

    def stream(self) -> LTX2Stream:
        return LTX2Stream(self) if self.causal else super().stream()


register_adapter(LTX2StudentAdapter.adapter_kind, LTX2StudentAdapter)
