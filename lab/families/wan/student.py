"""Pruned Wan students: the diffusers Wan decoder, rebuilt from diffusers' own block classes at the
widths a pruning plan chose, with the same module paths as ``AutoencoderKLWan`` (post_quant_conv,
decoder.conv_in, decoder.mid_block, decoder.up_blocks.i, decoder.norm_out, decoder.conv_out), so stage
maps, hooks and operator swaps apply to it unchanged. It keeps Wan's feature-cache interface
(clear_cache, _feat_map, _conv_idx), so lab.families.wan.teacher.WanStream streams it causally.

Widths are per channel group (see lab.families.wan.arch.wan_groups): ``up{i}.stream`` (residual stream of up
block i), ``up{i}.in`` (input of block i when its first resnet has a shortcut conv) and
``up{i}.res{j}.hidden`` (conv1 output of resnet j). Groups not listed keep the teacher's width.

``folded_norms`` lists the RMS norms (module paths, e.g. ``decoder.up_blocks.2.resnets.0.norm1``) built
as WanFoldedRMSNorm (below, on lab.models.students.folded_norm's estimate): pruning makes the norms of pruned groups divide
by the teacher's full-width rms estimated from the kept channels. Students saved without the key have
plain (gamma-rescaled) WanRMS_norm everywhere and load as before.
"""

from __future__ import annotations


import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.autoencoder_kl_wan import (WanCausalConv3d, WanDecoder3d, WanResample,
                                                              WanResidualBlock, WanRMS_norm)
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from lab.arch.groups import group_widths
from lab.errors import ConfigError
from lab.families.wan.arch import WAN
from lab.families.wan.chunked import decode_wan_chunked
from lab.families.wan.teacher import WanStream, wan_geometry
from lab.models.registry import register_adapter
from lab.models.students.base import StudentAdapter, plain as _plain
from lab.models.students.folded_norm import _apply_keeping_form_fp32, _fp32, _init_form, folded_mean_square


class WanFoldedRMSNorm(WanRMS_norm):
    """Channels-first folded RMS norm for Wan students: WanRMS_norm's x / rms(x) * gamma + bias, with
    rms(x) the folded estimate of the teacher's. A WanRMS_norm subclass with the same ``gamma`` (and
    ``bias``) so profiling, operator swaps and state dicts treat it as the norm it replaces."""

    def __init__(self, dim: int, channel_first: bool = True, images: bool = True, bias: bool = False,
                 eps: float = 1e-12):
        super().__init__(dim, channel_first=channel_first, images=images, bias=bias)
        self.eps = eps  # F.normalize's floor on the norm is 1e-12 too
        _init_form(self, dim)

    def _apply(self, fn, recurse=True):
        return _apply_keeping_form_fp32(self, super()._apply, fn, recurse)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = 1 if self.channel_first else -1
        bias = self.bias.float() if torch.is_tensor(self.bias) else self.bias
        with _fp32(x):
            last = x.float().movedim(dim, -1)
            inv = torch.rsqrt(folded_mean_square(last, self.quad, self.lin, self.const) + self.eps)
            return ((last * inv).movedim(-1, dim) * self.gamma.float() + bias).to(x.dtype)


# The AutoencoderKLWan config keys the decoder (and latent normalisation) depends on.
TEACHER_KEYS = ("base_dim", "decoder_base_dim", "z_dim", "dim_mult", "num_res_blocks", "attn_scales",
                "temperal_downsample", "dropout", "latents_mean", "latents_std", "is_residual", "out_channels",
                "patch_size", "scale_factor_temporal", "scale_factor_spatial")


def teacher_widths(teacher_config: dict) -> dict[str, int]:
    """Group name -> width in the teacher (what a student of it may shrink)."""
    base = teacher_config.get("decoder_base_dim") or teacher_config["base_dim"]
    mult = list(teacher_config["dim_mult"])
    dims = [base * u for u in [mult[-1]] + mult[::-1]]
    out = {}
    for i, (din, dout) in enumerate(zip(dims[:-1], dims[1:])):
        din = din // 2 if i > 0 else din
        if din != dout:
            out[f"up{i}.in"] = din
        out[f"up{i}.stream"] = dout
        for j in range(teacher_config["num_res_blocks"] + 1):
            out[f"up{i}.res{j}.hidden"] = dout
    return out


# The teacher config keys a Wan (2.1 or 2.2) student cannot be built without.
_NEEDED = ("base_dim", "z_dim", "dim_mult", "num_res_blocks", "temperal_downsample")


def wan_decoder(tc: dict, is_residual: bool) -> WanDecoder3d:
    """The teacher's ``WanDecoder3d`` from its AutoencoderKLWan config (as AutoencoderKLWan builds it)."""
    return WanDecoder3d(dim=tc.get("decoder_base_dim") or tc["base_dim"], z_dim=tc["z_dim"], dim_mult=tc["dim_mult"],
                        num_res_blocks=tc["num_res_blocks"], attn_scales=tc.get("attn_scales", []),
                        temperal_upsample=list(tc["temperal_downsample"])[::-1], dropout=tc.get("dropout", 0.0),
                        out_channels=tc.get("out_channels", 3), is_residual=is_residual)


def checked_widths(widths: dict, full: dict[str, int], kept: dict[str, list[int]] | None = None) -> dict[str, int]:
    """Every group's student width (``widths``, else the teacher's ``full`` width), checked against the
    teacher's groups; with ``kept``, its channel lists are checked too."""
    bad = [g for g in widths if g not in full]
    if bad:
        raise ConfigError(f"unknown channel group(s) {bad} for this teacher; groups: {', '.join(full)}")
    w = {g: int(widths.get(g, n)) for g, n in full.items()}
    for g, n in w.items():
        if not 1 <= n <= full[g]:
            raise ConfigError(f"group {g} width {n} is outside [1, {full[g]}] (the teacher's width)")
        if kept is not None and g in kept and (len(kept[g]) != n or not all(0 <= i < full[g] for i in kept[g])):
            raise ConfigError(f"kept channels of {g} must be {n} indices in [0, {full[g]}); got {kept[g]}")
    return w


class WanStudentVAE(ModelMixin, ConfigMixin):
    """A narrower Wan decoder (no encoder). Config records where it came from.

    Wan 2.2's student VAE (lab.models.students.wan22) is this class with its own ``_check_family``,
    ``_build`` and the class attributes below; the config checks, folded norms, operator swaps and the
    feature-cache interface are shared."""

    config_name = "config.json"
    #: the family's Architecture (for operator swaps) and its teacher widths from a teacher config
    _arch = WAN
    _teacher_widths = staticmethod(teacher_widths)

    @register_to_config
    def __init__(self, teacher: str = "", teacher_config: dict | None = None, widths: dict | None = None,
                 kept: dict | None = None, ratios: dict | None = None, criterion: str = "",
                 operators: dict | None = None, patch_size: int | None = None,
                 folded_norms: list | None = None):
        # patch_size duplicates teacher_config's so that Wan's own streaming code (which reads
        # vae.config.patch_size) works on the student unchanged.
        super().__init__()
        tc = dict(teacher_config or {})
        missing = [k for k in _NEEDED if k not in tc]
        if missing:
            raise ConfigError(f"{type(self).__name__} needs the teacher's AutoencoderKLWan config; missing {missing}")
        self._check_family(tc)
        self._build(tc, dict(widths or {}), kept)
        self._fold_norms(list(folded_norms or []))
        self.clear_cache()
        if operators:
            # deferred: lab.ops sits above lab.models (README, Imports point one way)
            from lab.ops.swap import apply_operators
            apply_operators(self, self._arch, dict(operators), init_from_existing=False)
            self.clear_cache()

    @staticmethod
    def _check_family(tc: dict) -> None:
        if tc.get("is_residual"):
            raise ConfigError("Wan 2.2-style decoders (is_residual=True) have their own student class "
                              "(lab.models.students.wan22.Wan22StudentVAE); WanStudentVAE is for Wan 2.1 teachers.")

    def _build(self, tc: dict, widths: dict, kept: dict | None) -> None:
        """post_quant_conv and the decoder at the planned widths (Wan 2.1 students do not use ``kept``)."""
        full = teacher_widths(tc)
        w = checked_widths(widths, full)
        self.post_quant_conv = WanCausalConv3d(tc["z_dim"], tc["z_dim"], 1)
        self.decoder = wan_decoder(tc, is_residual=False)
        self._narrow(w, full)

    def teacher_widths(self) -> dict[str, int]:
        return self._teacher_widths(dict(self.config.teacher_config))

    def _narrow(self, w: dict[str, int], full: dict[str, int]) -> None:
        """Rebuild, at the planned widths, every layer whose input or output width changed."""
        dec = self.decoder
        n_up = len(dec.up_blocks)

        def in_width(i: int) -> int:
            return w.get(f"up{i}.in", w[f"up{i}.stream"])

        for i, blk in enumerate(dec.up_blocks):
            s = w[f"up{i}.stream"]
            for j, r in enumerate(blk.resnets):
                din = in_width(i) if j == 0 else s
                h = w[f"up{i}.res{j}.hidden"]
                if (din, h, s) == (r.conv1.in_channels, r.conv1.out_channels, r.conv2.out_channels):
                    continue
                had_shortcut = not isinstance(r.conv_shortcut, nn.Identity)
                new = WanResidualBlock(din, h, dropout=r.dropout.p)
                new.conv2 = WanCausalConv3d(h, s, 3, padding=1)
                new.out_dim = s
                # Same structure as the teacher: a shortcut conv exactly where the teacher has one.
                new.conv_shortcut = WanCausalConv3d(din, s, 1) if had_shortcut else nn.Identity()
                if not had_shortcut and din != s:
                    raise ConfigError(f"up{i}.resnets.{j} has an identity shortcut, so its input and output must "
                                      f"share one channel set (got widths {din} and {s})")
                blk.resnets[j] = new
            if blk.upsamplers is not None:
                up = blk.upsamplers[0]
                out = in_width(i + 1)
                if (up.dim, up.resample[1].out_channels) != (s, out):
                    blk.upsamplers[0] = WanResample(s, mode=up.mode, upsample_out_dim=out)
            blk.in_dim, blk.out_dim = in_width(i), s
        last = w[f"up{n_up - 1}.stream"]
        if dec.conv_out.in_channels != last:
            dec.norm_out = WanRMS_norm(last, images=False)
            dec.conv_out = WanCausalConv3d(last, dec.conv_out.out_channels, 3, padding=1)

    def _fold_norms(self, paths: list[str]) -> None:
        """Replace the listed WanRMS_norm modules by folded ones of the same shape (before operator swaps,
        which may replace whole stages and their norms with them)."""
        for path in paths:
            try:
                old = self.get_submodule(path)
            except AttributeError:
                old = None
            if not isinstance(old, WanRMS_norm):
                raise ConfigError(f"folded_norms lists {path}, which is not an RMS norm of this decoder; "
                                  f"the student config is inconsistent (re-prune the student)")
            images = old.gamma.dim() == 3  # (C, 1, 1) for 2-D (image) norms, (C, 1, 1, 1) for video
            new = WanFoldedRMSNorm(old.gamma.shape[0], channel_first=old.channel_first, images=images,
                                   bias=isinstance(old.bias, nn.Parameter))
            self._set(path, new)

    def _set(self, path: str, module: nn.Module) -> None:
        parent, _, name = path.rpartition(".")
        setattr(self.get_submodule(parent), name, module)

    # ----- Wan's feature-cache interface (what WanStream drives) ------------------------------
    def clear_cache(self) -> None:
        # One cache slot per causal call; counting modules is a safe upper bound that also holds after
        # operator swaps (which may change how many slots a stage uses).
        self._feat_map = [None] * (sum(1 for _ in self.decoder.modules()) + 1)
        self._conv_idx = [0]

    def decode(self, z: torch.Tensor, return_dict: bool = True, chunk: int = 1):
        """Raw (denormalised) latents -> video, unclamped, one latent frame at a time as Wan does
        (so whole-clip and streamed decodes run the same computation); ``chunk`` > 1 runs that many
        latent frames per causal call after the first (lab.runtime.chunked: same result up to float
        summation order, faster)."""
        out = decode_wan_chunked(self, z, chunk)
        return DecoderOutput(sample=out) if return_dict else (out,)


def flash_vaed_student_vae(teacher: str, teacher_vae: nn.Module, plan: str = "flash-vaed") -> WanStudentVAE:
    """The Flash-VAED student architecture of a Wan 2.1 teacher: its widths (up2/up3 at 12.5%) and operator
    plan, with freshly initialised weights (speed does not depend on which channels are kept, so this is
    the student to time: ``wan2.1-flash`` with random weights). ``teacher_vae`` may live on the meta device
    (only its config and structure are read); the student is built on the current default device."""
    tc = {k: _plain(teacher_vae.config[k]) for k in TEACHER_KEYS if k in teacher_vae.config}
    groups = WAN.prune_groups(teacher_vae)
    ratios = WAN.flash_vaed_keep(WAN.num_up_blocks(teacher_vae))
    return WanStudentVAE(teacher=teacher, teacher_config=tc, widths=group_widths(groups, ratios), ratios=ratios,
                         criterion="none (architecture only)", operators=WAN.plan(plan),
                         patch_size=tc.get("patch_size"))


class WanStudentAdapter(StudentAdapter):
    """A pruned (and optionally operator-swapped) Wan student behind the lab's decoder interface."""

    vae_class = WanStudentVAE
    causal = True
    chunkable = True  # lab.runtime.chunked: its decode honours chunk_frames
    adapter_kind = "wan-student"
    arch = WAN

    def __init__(self, name: str, vae: WanStudentVAE):
        tc = vae.config.teacher_config
        geometry = wan_geometry(_Cfg(tc))
        super().__init__(name, geometry, tc.get("latents_mean"), tc.get("latents_std"))
        self.vae = vae

    def decoder_modules(self):
        return [self.vae.post_quant_conv, self.vae.decoder]

    def _decode_raw(self, z):
        return self.vae.decode(z, chunk=self.chunk_frames).sample

    def stream(self) -> WanStream:
        return WanStream(self)


class _Cfg:
    """The teacher's config dict seen as attributes, which is what teachers.wan_geometry reads."""

    def __init__(self, d: dict):
        self.__dict__.update({k: d.get(k) for k in TEACHER_KEYS})
        self.temperal_downsample = d["temperal_downsample"]
        self.z_dim = d["z_dim"]


register_adapter(WanStudentAdapter.adapter_kind, WanStudentAdapter)
