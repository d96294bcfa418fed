"""Pruned LTX-2 students: diffusers' ``LTX2VideoDecoder3d`` (with its own mid/up block, upsampler,
causal-conv and timestep-embedding classes) at the widths a pruning plan chose, with the same module
paths as ``AutoencoderKLLTX2Video.decoder``, so the stage map, hooks, the channel map
(lab.arch.ltx.ltx_groups) and operator swaps apply to it unchanged.

Why a class of its own rather than the LTX-Video student (lab.models.students.ltx), although the channel
map and the weight transfer (lab.prune.ltx) are shared: LTX-2's blocks pass ``causal`` to every conv
at call time (``LTX2VideoCausalConv3d.forward(x, causal)``), pad space with 'reflect', normalise
channels-first with weightless ``PerChannelRMSNorm``s and use a plain ``nn.Conv3d`` shortcut; the
LTX-Video student is built on ``LTXVideoDecoder3d``, whose blocks call ``conv(x)`` and whose norms are
channels-last. What differs from the teacher is what differs in the LTX-Video student:
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

from types import SimpleNamespace

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.autoencoder_kl_ltx2 import LTX2VideoCausalConv3d, LTX2VideoDecoder3d
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.embeddings import PixArtAlphaCombinedTimestepSizeEmbeddings
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from lab.arch import LTX2
from lab.arch.ltx import ltx_groups
from lab.errors import ConfigError
from lab.models.students.base import StudentAdapter
from lab.models.students.folded_norm import _apply_keeping_form_fp32, _fp32, _init_form, folded_mean_square
from lab.models.teachers import LTX2Stream, ltx2_geometry

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
    return {g.name: g.width for g in ltx_groups(SimpleNamespace(decoder=teacher_decoder_skeleton(tc)))}


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


class LTX2StudentResnetBlock3d(nn.Module):
    """LTX-2's resnet (norm1 -> [scale/shift] -> SiLU -> conv1 -> [noise] -> norm2 -> [scale/shift] -> SiLU
    -> conv2 -> [noise], plus an optional LayerNorm -> 1x1 conv shortcut) with separate input, hidden and
    output widths; submodule names as diffusers' ``LTX2VideoResnetBlock3d``, and its ``forward(inputs,
    temb, generator, causal)``. ``temb_index_1`` / ``temb_index_2`` pick the entries of the kept input /
    hidden channels from the block embedder's full-width output (4 chunks of the teacher's width)."""

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, shortcut: bool,
                 eps: float = 1e-6, inject_noise: bool = False, temb_index_1: torch.Tensor | None = None,
                 temb_index_2: torch.Tensor | None = None, folded_norms: tuple[bool, bool] = (False, False),
                 spatial_padding_mode: str = "reflect"):
        super().__init__()
        if not shortcut and in_channels != out_channels:
            raise ConfigError(f"a resnet without a shortcut conv must keep its width ({in_channels} -> {out_channels})")
        self.nonlinearity = nn.SiLU()
        self.norm1 = _rms_norm(in_channels, folded_norms[0])
        self.conv1 = LTX2VideoCausalConv3d(in_channels, hidden_channels, kernel_size=3,
                                           spatial_padding_mode=spatial_padding_mode)
        self.norm2 = _rms_norm(hidden_channels, folded_norms[1])
        self.dropout = nn.Dropout(0.0)
        self.conv2 = LTX2VideoCausalConv3d(hidden_channels, out_channels, kernel_size=3,
                                           spatial_padding_mode=spatial_padding_mode)
        self.norm3 = nn.LayerNorm(in_channels, eps=eps, elementwise_affine=True, bias=True) if shortcut else None
        self.conv_shortcut = nn.Conv3d(in_channels, out_channels, kernel_size=1) if shortcut else None
        self.per_channel_scale1 = nn.Parameter(torch.zeros(hidden_channels, 1, 1)) if inject_noise else None
        self.per_channel_scale2 = nn.Parameter(torch.zeros(out_channels, 1, 1)) if inject_noise else None
        self.shift_scale_1 = self.shift_scale_2 = None
        if temb_index_1 is not None:
            self.shift_scale_1 = nn.Parameter(torch.zeros(2, in_channels))
            self.shift_scale_2 = nn.Parameter(torch.zeros(2, hidden_channels))
            # Derived from the config's kept indices, so not saved with the weights.
            self.register_buffer("temb_index_1", torch.as_tensor(temb_index_1, dtype=torch.long), persistent=False)
            self.register_buffer("temb_index_2", torch.as_tensor(temb_index_2, dtype=torch.long), persistent=False)

    @staticmethod
    def _noise(h: torch.Tensor, scale: torch.Tensor, generator) -> torch.Tensor:
        spatial = torch.randn(h.shape[-2:], generator=generator, device=h.device, dtype=h.dtype)[None]
        return h + (spatial * scale)[None, :, None, ...]

    def forward(self, inputs: torch.Tensor, temb: torch.Tensor | None = None, generator=None,
                causal: bool = True) -> torch.Tensor:
        h = self.norm1(inputs)
        if self.shift_scale_1 is not None:
            t = temb.unflatten(1, (4, -1))  # (B, 4, C_teacher, 1, 1, 1)
            view = (None, ..., None, None, None)
            ss1 = t[:, 0:2].index_select(2, self.temb_index_1) + self.shift_scale_1[view]
            ss2 = t[:, 2:4].index_select(2, self.temb_index_2) + self.shift_scale_2[view]
            shift_1, scale_1 = ss1.unbind(dim=1)
            shift_2, scale_2 = ss2.unbind(dim=1)
            h = h * (1 + scale_1) + shift_1
        h = self.conv1(self.nonlinearity(h), causal=causal)
        if self.per_channel_scale1 is not None:
            h = self._noise(h, self.per_channel_scale1, generator)
        h = self.norm2(h)
        if self.shift_scale_1 is not None:
            h = h * (1 + scale_2) + shift_2
        h = self.conv2(self.dropout(self.nonlinearity(h)), causal=causal)
        if self.per_channel_scale2 is not None:
            h = self._noise(h, self.per_channel_scale2, generator)
        if self.norm3 is not None:
            inputs = self.norm3(inputs.movedim(1, -1)).movedim(-1, 1)
        if self.conv_shortcut is not None:
            inputs = self.conv_shortcut(inputs)
        return h + inputs


class LTX2StudentDecoder3d(LTX2VideoDecoder3d):
    """``LTX2VideoDecoder3d`` at per-group widths. Built as the teacher's skeleton on the meta device,
    then every layer with parameters is rebuilt for real at its student width (so a full-size teacher
    is never allocated)."""

    def __init__(self, tc: dict, widths: dict[str, int], index: dict[str, torch.Tensor], full: dict[str, int]):
        kw = decoder_kwargs(tc)
        with torch.device("meta"):
            super().__init__(**kw)
        cond, eps, pm = kw["timestep_conditioning"], kw["resnet_norm_eps"], kw["spatial_padding_mode"]
        used = set()

        def w(name):
            used.add(name)
            return widths[name]

        def resnet(old, src, hidden, dst, shortcut):
            inject = old.per_channel_scale1 is not None  # the teacher block's own setting
            return LTX2StudentResnetBlock3d(w(src), w(hidden), w(dst), shortcut, eps, inject,
                                            index[src] if cond else None, index[hidden] if cond else None,
                                            (widths[src] < full[src], widths[hidden] < full[hidden]), pm)

        def embedder(old):
            # Kept at the teacher's width: it maps a scalar timestep, and the resnets index its output.
            return None if old is None else PixArtAlphaCombinedTimestepSizeEmbeddings(
                old.timestep_embedder.linear_2.out_features, 0)

        def conv(cin, cout):
            return LTX2VideoCausalConv3d(cin, cout, kernel_size=3, spatial_padding_mode=pm)

        self.conv_in = conv(kw["in_channels"], w("mid.stream"))
        stream = "mid.stream"
        mid = self.mid_block
        mid.time_embedder = embedder(mid.time_embedder)
        for j in range(len(mid.resnets)):
            mid.resnets[j] = resnet(mid.resnets[j], stream, f"mid.res{j}.hidden", stream, False)
        for i, blk in enumerate(self.up_blocks):
            ups = blk.upsamplers[0] if blk.upsamplers is not None else None
            if blk.conv_in is not None:
                new = f"up{i}.in" if ups is not None else f"up{i}.stream"
                blk.conv_in = resnet(blk.conv_in, stream, f"up{i}.conv_in.hidden", new, True)
                stream = new
            blk.time_embedder = embedder(blk.time_embedder)
            if ups is not None:
                new = f"up{i}.stream"
                factor = ups.stride[0] * ups.stride[1] * ups.stride[2]
                ups.residual, ups.upscale_factor = False, 1  # a teacher residual is folded into the conv
                ups.conv = conv(w(stream), factor * w(new))
                stream = new
            for j in range(len(blk.resnets)):
                blk.resnets[j] = resnet(blk.resnets[j], stream, f"up{i}.res{j}.hidden", stream, False)
        self.norm_out = _rms_norm(w(stream), widths[stream] < full[stream])
        self.conv_out = conv(w(stream), self.out_channels)
        if cond:
            self.timestep_scale_multiplier = nn.Parameter(torch.tensor(1000.0))
            self.time_embedder = embedder(self.time_embedder)
            self.scale_shift_table = nn.Parameter(torch.zeros(2, w(stream)))
            self.register_buffer("out_index", torch.as_tensor(index[stream], dtype=torch.long), persistent=False)
        self.last_group = stream
        unused = set(widths) - used
        left = [n for n, t in list(self.named_parameters()) + list(self.named_buffers()) if t.is_meta]
        if unused or left:
            raise ConfigError(f"LTX-2 student construction is out of step with the channel map (groups never used: "
                              f"{sorted(unused)}, layers not rebuilt: {left[:5]}); this is a lab bug.")

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
        if self.time_embedder is not None:
            t = self.time_embedder(timestep=temb.flatten(), resolution=None, aspect_ratio=None,
                                   batch_size=hidden_states.size(0), hidden_dtype=hidden_states.dtype)
            t = t.view(hidden_states.size(0), -1, 1, 1, 1).unflatten(1, (2, -1)).index_select(2, self.out_index)
            shift, scale = (t + self.scale_shift_table[None, ..., None, None, None]).unbind(dim=1)
            hidden_states = hidden_states * (1 + scale) + shift
        hidden_states = self.conv_out(self.conv_act(hidden_states), causal=causal)
        p, p_t = self.patch_size, self.patch_size_t
        b, _, f, h, w = hidden_states.shape
        hidden_states = hidden_states.reshape(b, -1, p_t, p, p, f, h, w)
        return hidden_states.permute(0, 1, 5, 2, 6, 4, 7, 3).flatten(6, 7).flatten(4, 5).flatten(2, 3)


class LTX2StudentVAE(ModelMixin, ConfigMixin):
    """A narrower LTX-2 decoder (no encoder). Config records where it came from."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, teacher: str = "", teacher_config: dict | None = None, widths: dict | None = None,
                 kept: dict | None = None, ratios: dict | None = None, criterion: str = "",
                 operators: dict | None = None, timestep_conditioning: bool = False):
        # timestep_conditioning duplicates teacher_config's so that code reading vae.config of an LTX
        # model (lab.arch.ltx.LTXArchitecture.decode_raw) works on the student unchanged.
        super().__init__()
        tc = dict(teacher_config or {})
        missing = [k for k in _REQUIRED if k not in tc]
        if missing:
            raise ConfigError(f"LTX2StudentVAE needs the teacher's AutoencoderKLLTX2Video config; missing {missing}")
        full = teacher_widths(tc)
        widths, kept = dict(widths or {}), dict(kept or {})
        bad = [g for g in list(widths) + list(kept) if g not in full]
        if bad:
            raise ConfigError(f"unknown channel group(s) {sorted(set(bad))} for this teacher; groups: {', '.join(full)}")
        w = {g: int(widths.get(g, n)) for g, n in full.items()}
        index = {}
        for g, n in w.items():
            if not 1 <= n <= full[g]:
                raise ConfigError(f"group {g} width {n} is outside [1, {full[g]}] (the teacher's width)")
            idx = [int(i) for i in kept.get(g, range(n))]
            if len(idx) != n or len(set(idx)) != n or min(idx) < 0 or max(idx) >= full[g]:
                raise ConfigError(f"kept indices of group {g} must be {n} distinct channels of [0, {full[g]})")
            index[g] = torch.tensor(idx, dtype=torch.long)
        self.decoder = LTX2StudentDecoder3d(tc, w, index, full)
        if operators:
            from lab.ops.swap import apply_operators
            apply_operators(self, LTX2, dict(operators), init_from_existing=False)

    def teacher_widths(self) -> dict[str, int]:
        return teacher_widths(dict(self.config.teacher_config))

    def decode(self, z: torch.Tensor, temb: torch.Tensor | None = None, causal: bool | None = None,
               return_dict: bool = True):
        """Raw (denormalised) latents -> video, unclamped (as AutoencoderKLLTX2Video.decode without tiling)."""
        out = self.decoder(z, temb, causal=causal)
        return DecoderOutput(sample=out) if return_dict else (out,)


class LTX2StudentAdapter(StudentAdapter):
    """A pruned (and optionally operator-swapped) LTX-2 student behind the lab's decoder interface. Like its
    teacher it is causal (and streams) when the teacher's decoder is, and decodes conditioned models at
    ``decode_timestep``."""

    vae_class = LTX2StudentVAE
    adapter_kind = "ltx-2-student"
    arch = LTX2

    def __init__(self, name: str, vae: LTX2StudentVAE, decode_timestep: float = 0.0):
        tc = vae.config.teacher_config
        c = tc["latent_channels"]
        mean = torch.tensor(tc["latents_mean"]) if tc.get("latents_mean") is not None else torch.zeros(c)
        std = torch.tensor(tc["latents_std"]) if tc.get("latents_std") is not None else torch.ones(c)
        super().__init__(name, ltx2_geometry(tc), mean, std, tc.get("scaling_factor", 1.0))
        self.vae = vae
        self.decode_timestep = decode_timestep
        self.causal = LTX2.is_causal(vae)

    def decoder_modules(self):
        return [self.vae.decoder]

    def _decode_raw(self, z):
        return self.arch.decode_raw(self.vae, z, self.decode_timestep)

    def stream(self) -> LTX2Stream:
        return LTX2Stream(self) if self.causal else super().stream()
