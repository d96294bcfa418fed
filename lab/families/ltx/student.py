"""Pruned LTX-Video students: the diffusers LTX-Video decoder (``LTXVideoDecoder3d`` with diffusers' own
mid/up block, upsampler, causal-conv, RMSNorm and timestep-embedding classes) at the widths a pruning
plan chose, with the same module paths as ``AutoencoderKLLTXVideo.decoder``, so stage maps, hooks,
the channel-group map and operator swaps apply to it unchanged.

What differs from the teacher, and why:
- resnets are ``LTXStudentResnetBlock3d``: diffusers' block ties its hidden width to its output width
  and reads its timestep scale/shift as 4 equal chunks of one table; a pruned block has three widths
  (input, hidden, output) and needs the conditioning of its *kept* channels, so it gathers them from
  the (full-width, cheap) block time embedder by index;
- RMS norms carry a per-channel weight (the teacher's have none), and the norms of pruned groups are
  ``FoldedRMSNorm`` (lab.models.students.folded_norm): they divide by the teacher's full-width rms as
  estimated from the kept channels (the rms of a few kept channels alone varies far more per position),
  with the estimate set by pruning;
- upsamplers are never residual: the residual shortcut of a depth-to-space upsampler is a fixed linear
  map of its input, folded into the conv's current-frame tap by pruning (exact), so the student's
  upsampler reads any kept channel set.

Widths are per channel group (see lab.families.ltx.arch.ltx_groups): ``mid.stream``, ``up{i}.in``,
``up{i}.stream``, ``mid.res{j}.hidden``, ``up{i}.conv_in.hidden``, ``up{i}.res{j}.hidden``. Groups not
listed keep the teacher's width; ``kept`` lists the teacher channel indices of each group (defaults to
the first ``width`` channels), which the student uses to index the timestep conditioning.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.autoencoder_kl_ltx import LTXVideoCausalConv3d, LTXVideoDecoder3d
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.embeddings import PixArtAlphaCombinedTimestepSizeEmbeddings
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import RMSNorm
from torch import nn

from lab.arch.groups import group_widths
from lab.errors import ConfigError
from lab.families.ltx.arch import LTX, ltx_groups
from lab.models.interface import LatentGeometry
from lab.models.registry import register_adapter
from lab.models.students.base import StudentAdapter, plain
from lab.models.students.folded_norm import FoldedRMSNorm
from lab.ops.swap import apply_operators

# The AutoencoderKLLTXVideo config keys the decoder and latent normalisation depend on (latents_mean /
# latents_std are buffers in the teacher; the student keeps them in this config as lists).
TEACHER_KEYS = ("latent_channels", "out_channels", "decoder_block_out_channels", "decoder_layers_per_block",
                "decoder_spatio_temporal_scaling", "decoder_inject_noise", "upsample_residual", "upsample_factor",
                "timestep_conditioning", "patch_size", "patch_size_t", "resnet_norm_eps", "decoder_causal",
                "scaling_factor", "spatial_compression_ratio", "temporal_compression_ratio",
                "latents_mean", "latents_std")
_REQUIRED = ("latent_channels", "decoder_block_out_channels", "decoder_layers_per_block",
             "decoder_spatio_temporal_scaling", "patch_size")


def decoder_kwargs(tc: dict) -> dict:
    """LTXVideoDecoder3d arguments from an AutoencoderKLLTXVideo config (as AutoencoderKLLTXVideo passes them)."""
    n = len(tc["decoder_block_out_channels"])
    kw = {"in_channels": tc["latent_channels"], "out_channels": tc.get("out_channels", 3),
          "block_out_channels": tuple(tc["decoder_block_out_channels"]),
          "spatio_temporal_scaling": tuple(tc["decoder_spatio_temporal_scaling"]),
          "layers_per_block": tuple(tc["decoder_layers_per_block"]),
          "patch_size": tc["patch_size"], "patch_size_t": tc.get("patch_size_t", 1),
          "resnet_norm_eps": tc.get("resnet_norm_eps", 1e-6), "is_causal": bool(tc.get("decoder_causal", False)),
          "inject_noise": tuple(tc.get("decoder_inject_noise") or (False,) * (n + 1)),
          "timestep_conditioning": bool(tc.get("timestep_conditioning", False)),
          "upsample_residual": tuple(tc.get("upsample_residual") or (False,) * n),
          "upsample_factor": tuple(tc.get("upsample_factor") or (1,) * n)}
    return kw


def teacher_decoder_skeleton(tc: dict) -> LTXVideoDecoder3d:
    """The teacher's decoder on the meta device: its structure (and channel map) at no memory cost."""
    with torch.device("meta"):
        return LTXVideoDecoder3d(**decoder_kwargs(tc))


def skeleton_widths(decoder: nn.Module) -> dict[str, int]:
    """Group name -> width of an LTX-Video or LTX-2 decoder (a meta-device skeleton is enough)."""
    return {g.name: g.width for g in ltx_groups(SimpleNamespace(decoder=decoder))}


def teacher_widths(tc: dict) -> dict[str, int]:
    """Group name -> width in the teacher (what a student of it may shrink)."""
    return skeleton_widths(teacher_decoder_skeleton(tc))


def _rms_norm(dim: int, folded: bool) -> nn.Module:
    return FoldedRMSNorm(dim) if folded else RMSNorm(dim, eps=1e-8, elementwise_affine=True)


class LTXStudentResnetBlock3d(nn.Module):
    """LTX's resnet (norm1 -> [scale/shift] -> SiLU -> conv1 -> [noise] -> norm2 -> [scale/shift] -> SiLU
    -> conv2 -> [noise], plus an optional LayerNorm -> 1x1 conv shortcut) with separate input, hidden and
    output widths. Submodule names match diffusers' ``LTXVideoResnetBlock3d``. With timestep
    conditioning, ``temb`` is the block embedder's full-width output (4 chunks of the teacher's width);
    ``temb_index_1`` / ``temb_index_2`` pick the chunks' entries of the kept input / hidden channels.

    The LTX-2 block (lab.families.ltx2.student) is this one with other convs and norms: it builds through
    ``_build`` and overrides ``_norm`` / ``_conv``, the two calls that differ."""

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, shortcut: bool,
                 eps: float = 1e-6, is_causal: bool = False, inject_noise: bool = False,
                 temb_index_1: torch.Tensor | None = None, temb_index_2: torch.Tensor | None = None,
                 folded_norms: tuple[bool, bool] = (False, False)):
        super().__init__()
        self._build(in_channels, hidden_channels, out_channels, shortcut, eps, inject_noise, temb_index_1,
                    temb_index_2, folded_norms, norm=_rms_norm,
                    conv=lambda cin, cout: LTXVideoCausalConv3d(cin, cout, kernel_size=3, is_causal=is_causal),
                    shortcut_conv=lambda cin, cout: LTXVideoCausalConv3d(cin, cout, kernel_size=1, is_causal=is_causal))

    def _build(self, in_channels, hidden_channels, out_channels, shortcut, eps, inject_noise, temb_index_1,
               temb_index_2, folded_norms, norm, conv, shortcut_conv) -> None:
        """The block's layers, in diffusers' order; ``norm(dim, folded)``, ``conv(cin, cout)`` (3x3x3) and
        ``shortcut_conv(cin, cout)`` (1x1x1) build the family's own."""
        if not shortcut and in_channels != out_channels:
            raise ConfigError(f"a resnet without a shortcut conv must keep its width ({in_channels} -> {out_channels})")
        self.nonlinearity = nn.SiLU()
        self.norm1 = norm(in_channels, folded_norms[0])
        self.conv1 = conv(in_channels, hidden_channels)
        self.norm2 = norm(hidden_channels, folded_norms[1])
        self.dropout = nn.Dropout(0.0)
        self.conv2 = conv(hidden_channels, out_channels)
        self.norm3 = nn.LayerNorm(in_channels, eps=eps, elementwise_affine=True, bias=True) if shortcut else None
        self.conv_shortcut = shortcut_conv(in_channels, out_channels) if shortcut else None
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

    def _norm(self, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """A channels-first tensor through one of the block's RMS norms (LTX-Video's are channels-last)."""
        return norm(x.movedim(1, -1)).movedim(-1, 1)

    def _conv(self, conv: nn.Module, x: torch.Tensor, causal: bool) -> torch.Tensor:
        """conv1 / conv2 (LTX-Video's convs fix their causality at construction; LTX-2's take it per call)."""
        return conv(x)

    def forward(self, inputs: torch.Tensor, temb: torch.Tensor | None = None, generator=None,
                causal: bool = True) -> torch.Tensor:
        h = self._norm(self.norm1, inputs)
        if self.shift_scale_1 is not None:
            t = temb.unflatten(1, (4, -1))  # (B, 4, C_teacher, 1, 1, 1)
            view = (None, ..., None, None, None)
            ss1 = t[:, 0:2].index_select(2, self.temb_index_1) + self.shift_scale_1[view]
            ss2 = t[:, 2:4].index_select(2, self.temb_index_2) + self.shift_scale_2[view]
            shift_1, scale_1 = ss1.unbind(dim=1)
            shift_2, scale_2 = ss2.unbind(dim=1)
            h = h * (1 + scale_1) + shift_1
        h = self._conv(self.conv1, self.nonlinearity(h), causal)
        if self.per_channel_scale1 is not None:
            h = self._noise(h, self.per_channel_scale1, generator)
        h = self._norm(self.norm2, h)
        if self.shift_scale_1 is not None:
            h = h * (1 + scale_2) + shift_2
        h = self._conv(self.conv2, self.dropout(self.nonlinearity(h)), causal)
        if self.per_channel_scale2 is not None:
            h = self._noise(h, self.per_channel_scale2, generator)
        if self.norm3 is not None:
            inputs = self.norm3(inputs.movedim(1, -1)).movedim(-1, 1)
        if self.conv_shortcut is not None:
            inputs = self.conv_shortcut(inputs)
        return h + inputs


def narrow_decoder(dec: nn.Module, kw: dict, widths: dict[str, int], index: dict[str, torch.Tensor],
                   full: dict[str, int], block, conv, norm, family: str) -> None:
    """Rebuild, for real and at its student width, every layer with parameters of an LTX-Video or LTX-2
    decoder skeleton built on the meta device from ``kw`` (its constructor's arguments). The family's
    layers come from ``block(in, hidden, out, shortcut, eps, inject_noise, temb_index_1, temb_index_2,
    folded_norms)`` (a student resnet), ``conv(cin, cout)`` (its 3x3x3 causal conv) and ``norm(dim,
    folded)``; ``family`` names it in the error that catches a student out of step with the channel map."""
    cond, eps = kw["timestep_conditioning"], kw["resnet_norm_eps"]
    used = set()
    # What every rebuild must replace; held (meta tensors cost nothing) so no id is reused by a new tensor.
    skeleton_tensors = list(dec.parameters()) + list(dec.buffers())
    skeleton = {id(t) for t in skeleton_tensors}

    def w(name):
        used.add(name)
        return widths[name]

    def resnet(old, src, hidden, dst, shortcut):
        inject = old.per_channel_scale1 is not None  # the teacher block's own setting
        return block(w(src), w(hidden), w(dst), shortcut, eps, inject,
                     index[src] if cond else None, index[hidden] if cond else None,
                     (widths[src] < full[src], widths[hidden] < full[hidden]))

    def embedder(old):
        # Kept at the teacher's width: it maps a scalar timestep, and the resnets index its output.
        return None if old is None else PixArtAlphaCombinedTimestepSizeEmbeddings(
            old.timestep_embedder.linear_2.out_features, 0)

    dec.conv_in = conv(kw["in_channels"], w("mid.stream"))
    stream = "mid.stream"
    mid = dec.mid_block
    mid.time_embedder = embedder(mid.time_embedder)
    for j in range(len(mid.resnets)):
        mid.resnets[j] = resnet(mid.resnets[j], stream, f"mid.res{j}.hidden", stream, False)
    for i, blk in enumerate(dec.up_blocks):
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
    dec.norm_out = norm(w(stream), widths[stream] < full[stream])
    dec.conv_out = conv(w(stream), dec.out_channels)
    if cond:
        dec.timestep_scale_multiplier = nn.Parameter(torch.tensor(1000.0))
        dec.time_embedder = embedder(dec.time_embedder)
        dec.scale_shift_table = nn.Parameter(torch.zeros(2, w(stream)))
        dec.register_buffer("out_index", torch.as_tensor(index[stream], dtype=torch.long), persistent=False)
    dec.last_group = stream
    unused = set(widths) - used
    # A skeleton tensor still in place is a layer not rebuilt, whatever the default device (a build under a
    # meta default device, for a parameter count or a trace, is meta throughout by design).
    left = [n for n, t in list(dec.named_parameters()) + list(dec.named_buffers()) if id(t) in skeleton]
    if unused or left:
        raise ConfigError(f"{family} student construction is out of step with the channel map (groups never used: "
                          f"{sorted(unused)}, layers not rebuilt: {left[:5]}); this is a lab bug.")


def condition_output(dec: nn.Module, hidden_states: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
    """The decoder's output scale/shift (with timestep conditioning), gathered for the kept channels of
    the last stream (see LTXStudentResnetBlock3d)."""
    if dec.time_embedder is not None:
        t = dec.time_embedder(timestep=temb.flatten(), resolution=None, aspect_ratio=None,
                              batch_size=hidden_states.size(0), hidden_dtype=hidden_states.dtype)
        t = t.view(hidden_states.size(0), -1, 1, 1, 1).unflatten(1, (2, -1)).index_select(2, dec.out_index)
        shift, scale = (t + dec.scale_shift_table[None, ..., None, None, None]).unbind(dim=1)
        hidden_states = hidden_states * (1 + scale) + shift
    return hidden_states


def unpatchify(dec: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    """conv_out's patches -> frames (as diffusers' LTX decoders end)."""
    p, p_t = dec.patch_size, dec.patch_size_t
    b, _, f, h, w = hidden_states.shape
    hidden_states = hidden_states.reshape(b, -1, p_t, p, p, f, h, w)
    return hidden_states.permute(0, 1, 5, 2, 6, 4, 7, 3).flatten(6, 7).flatten(4, 5).flatten(2, 3)


class LTXStudentDecoder3d(LTXVideoDecoder3d):
    """``LTXVideoDecoder3d`` at per-group widths. Built as the teacher's skeleton on the meta device,
    then every layer with parameters is rebuilt for real at its student width (so a full-size teacher
    is never allocated)."""

    def __init__(self, tc: dict, widths: dict[str, int], index: dict[str, torch.Tensor], full: dict[str, int]):
        kw = decoder_kwargs(tc)
        with torch.device("meta"):
            super().__init__(**kw)
        causal = kw["is_causal"]

        def block(cin, hidden, cout, shortcut, eps, inject, temb_index_1, temb_index_2, folded):
            return LTXStudentResnetBlock3d(cin, hidden, cout, shortcut, eps, causal, inject, temb_index_1,
                                           temb_index_2, folded)

        def conv(cin, cout):
            return LTXVideoCausalConv3d(cin, cout, kernel_size=3, is_causal=causal)

        narrow_decoder(self, kw, widths, index, full, block, conv, _rms_norm, "LTX")

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        # diffusers' LTXVideoDecoder3d.forward, except that the output scale/shift is gathered for the
        # kept channels of the last stream (see LTXStudentResnetBlock3d).
        hidden_states = self.conv_in(hidden_states)
        if self.timestep_scale_multiplier is not None:
            temb = temb * self.timestep_scale_multiplier
        hidden_states = self.mid_block(hidden_states, temb)
        for up_block in self.up_blocks:
            hidden_states = up_block(hidden_states, temb)
        hidden_states = self.norm_out(hidden_states.movedim(1, -1)).movedim(-1, 1)
        hidden_states = condition_output(self, hidden_states, temb)
        hidden_states = self.conv_out(self.conv_act(hidden_states))
        return unpatchify(self, hidden_states)


class LTXStudentVAE(ModelMixin, ConfigMixin):
    """A narrower LTX-Video decoder (no encoder). Config records where it came from.

    LTX-2's student VAE (lab.families.ltx2.student) is this class with the family's own hooks below and
    ``decode``; both check a config the same way."""

    config_name = "config.json"
    #: the family's hooks: its decoder class, Architecture, teacher widths from a teacher config, the
    #: teacher config keys it cannot do without and the teacher class (for errors)
    _decoder_class = LTXStudentDecoder3d
    _arch = LTX
    _teacher_widths = staticmethod(teacher_widths)
    _required = _REQUIRED
    _teacher_class = "AutoencoderKLLTXVideo"

    @register_to_config
    def __init__(self, teacher: str = "", teacher_config: dict | None = None, widths: dict | None = None,
                 kept: dict | None = None, ratios: dict | None = None, criterion: str = "",
                 operators: dict | None = None, timestep_conditioning: bool = False):
        # timestep_conditioning duplicates teacher_config's so that code reading vae.config of an LTX
        # model (lab.families.ltx.arch.LTXArchitecture.decode_raw) works on the student unchanged.
        super().__init__()
        tc = dict(teacher_config or {})
        missing = [k for k in self._required if k not in tc]
        if missing:
            raise ConfigError(f"{type(self).__name__} needs the teacher's {self._teacher_class} config; "
                              f"missing {missing}")
        full = self._teacher_widths(tc)
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
        self.decoder = self._decoder_class(tc, w, index, full)
        if operators:
            apply_operators(self, self._arch, dict(operators), init_from_existing=False)

    def teacher_widths(self) -> dict[str, int]:
        return self._teacher_widths(dict(self.config.teacher_config))

    def decode(self, z: torch.Tensor, temb: torch.Tensor | None = None, return_dict: bool = True):
        """Raw (denormalised) latents -> video, unclamped (as AutoencoderKLLTXVideo.decode without tiling)."""
        out = self.decoder(z, temb)
        return DecoderOutput(sample=out) if return_dict else (out,)


def ltx_geometry(tc: dict) -> LatentGeometry:
    ups = sum(bool(s) for s in tc["decoder_spatio_temporal_scaling"])
    s = tc.get("spatial_compression_ratio") or tc["patch_size"] * 2 ** ups
    t = tc.get("temporal_compression_ratio") or tc.get("patch_size_t", 1) * 2 ** ups
    return LatentGeometry(tc["latent_channels"], (t, s, s))


def flash_vaed_student_vae(teacher: str, teacher_vae: nn.Module, plan: str = "flash-vaed",
                           vae_class: type | None = None, teacher_keys: tuple[str, ...] = TEACHER_KEYS) -> "LTXStudentVAE":
    """The Flash-VAED student architecture of an LTX-Video teacher (its widths and operator plan) with
    freshly initialised weights, for speed work (``ltx-video-flash``); ``teacher_vae`` may live on the meta
    device (its config and structure are read; the latent statistics are the identity). ``vae_class`` (default
    ``LTXStudentVAE``) and ``teacher_keys``: another family's student of the same build (LTX-2's,
    ``ltx-2-flash``), whose architecture is its ``_arch``."""
    vae_class = vae_class or LTXStudentVAE
    arch = vae_class._arch
    c = teacher_vae.config
    tc = {k: plain(c[k]) for k in teacher_keys if k in c}
    tc["latents_mean"], tc["latents_std"] = [0.0] * c.latent_channels, [1.0] * c.latent_channels
    groups = arch.prune_groups(teacher_vae)
    ratios = arch.flash_vaed_keep(arch.num_up_blocks(teacher_vae))
    return vae_class(teacher=teacher, teacher_config=tc, widths=group_widths(groups, ratios), ratios=ratios,
                     criterion="none (architecture only)", operators=arch.plan(plan),
                     timestep_conditioning=bool(tc.get("timestep_conditioning", False)))


class LTXStudentAdapter(StudentAdapter):
    """A pruned (and optionally operator-swapped) LTX-Video student behind the lab's decoder interface.
    Like its teacher it is not causal and decodes conditioned models at ``decode_timestep``. (LTX-2's
    adapter is this one with its own geometry, causality and streaming.)"""

    vae_class = LTXStudentVAE
    causal = False
    adapter_kind = "ltx-student"
    arch = LTX
    #: the latent geometry from the teacher config the student records
    _geometry = staticmethod(ltx_geometry)

    def __init__(self, name: str, vae: LTXStudentVAE, decode_timestep: float = 0.0):
        tc = vae.config.teacher_config
        c = tc["latent_channels"]
        mean = torch.tensor(tc["latents_mean"]) if tc.get("latents_mean") is not None else torch.zeros(c)
        std = torch.tensor(tc["latents_std"]) if tc.get("latents_std") is not None else torch.ones(c)
        super().__init__(name, self._geometry(tc), mean, std, tc.get("scaling_factor", 1.0))
        self.vae = vae
        self.decode_timestep = decode_timestep

    def decoder_modules(self):
        return [self.vae.decoder]

    def _decode_raw(self, z):
        return self.arch.decode_raw(self.vae, z, self.decode_timestep)


register_adapter(LTXStudentAdapter.adapter_kind, LTXStudentAdapter)
