"""Pruned Wan 2.2 students: the residual Wan decoder (diffusers' ``WanDecoder3d(is_residual=True)``, the
TI2V-5B VAE's) rebuilt at the widths a pruning plan chose, with the same module paths as
``AutoencoderKLWan`` (post_quant_conv, decoder.conv_in, decoder.mid_block, decoder.up_blocks.i with
``resnets``, ``upsampler`` and ``avg_shortcut``, decoder.norm_out, decoder.conv_out), so stage maps, hooks,
operator swaps and weight transfer apply unchanged. It keeps Wan's feature-cache interface (it is a
``WanStudentVAE``: clear_cache, decode, folded norms), so lab.families.wan.teacher.WanStream streams it.

Widths are per channel group of lab.families.wan.v22.arch.wan22_groups (``up{i}.res{j}.hidden``, ``up{i}.stream``,
``up{i}.in``; groups not listed keep the teacher's width). Every layer that reads or writes a narrowed
group is rebuilt at the new width. A DupUp3D shortcut whose input or output group is narrowed becomes an
``IndexedDupUp3D``: the same parameter-free repeat, reading for each kept output channel the input
channels the teacher's shortcut read (the gather indices come from ``kept`` in the config).
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from diffusers.models.autoencoders.autoencoder_kl_wan import DupUp3D, WanCausalConv3d, WanRMS_norm
from torch import nn

from lab.errors import ConfigError
from lab.families.wan.student import WanStudentAdapter, WanStudentVAE, checked_widths, wan_decoder
from lab.families.wan.v22.arch import WAN22, dupup_source, wan22_groups
from lab.models.registry import register_adapter


def teacher_groups(teacher_config: dict):
    """The teacher's channel groups, from its config (the decoder is built on the meta device: no memory)."""
    with torch.device("meta"):
        dec = wan_decoder(teacher_config, is_residual=True)
    return wan22_groups(SimpleNamespace(decoder=dec))


def teacher_widths(teacher_config: dict) -> dict[str, int]:
    """Group name -> width in the teacher (what a student of it may shrink)."""
    return {g.name: g.width for g in teacher_groups(teacher_config)}


class IndexedDupUp3D(DupUp3D):
    """``DupUp3D`` over a pruned channel map: output channel c, sub-position k copies input channel
    ``index[c * factor + k]`` (the position, among the student's input channels, of the channel the
    teacher's shortcut copies there). Parameter-free, like the original."""

    def __init__(self, in_channels: int, out_channels: int, factor_t: int, factor_s: int, index: list[int]):
        nn.Module.__init__(self)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.factor_t, self.factor_s = factor_t, factor_s
        self.factor = factor_t * factor_s * factor_s
        self.repeats = 1  # the gather already wrote every sub-position
        if len(index) != out_channels * self.factor or not all(0 <= i < in_channels for i in index):
            raise ConfigError(f"IndexedDupUp3D needs {out_channels * self.factor} indices in [0, {in_channels})")
        self.register_buffer("index", torch.tensor(index, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor, first_chunk=False) -> torch.Tensor:
        return super().forward(x.index_select(1, self.index), first_chunk=first_chunk)


def _conv_like(layer: nn.Module, cin: int, cout: int) -> nn.Module:
    if isinstance(layer, WanCausalConv3d):
        p = layer._padding  # (w, w, h, h, 2 * t, 0)
        return WanCausalConv3d(cin, cout, layer.kernel_size, layer.stride, padding=(p[4] // 2, p[2], p[0]))
    if type(layer) is nn.Conv2d:
        return nn.Conv2d(cin, cout, layer.kernel_size, layer.stride, layer.padding, bias=layer.bias is not None)
    raise ConfigError(f"cannot narrow a {type(layer).__name__}; the Wan 2.2 channel map names only convs")


class Wan22StudentVAE(WanStudentVAE):
    """A narrower Wan 2.2 decoder (no encoder). Config records where it came from. The Wan 2.1 student VAE
    (same config keys, checks, folded norms and operator swaps) with the residual decoder, narrowed from
    its channel map."""

    config_name = "config.json"
    _arch = WAN22
    _teacher_widths = staticmethod(teacher_widths)

    @staticmethod
    def _check_family(tc: dict) -> None:
        if not tc.get("is_residual"):
            raise ConfigError("Wan22StudentVAE is for Wan 2.2-style decoders (is_residual=True); a Wan 2.1 teacher "
                              "gives a WanStudentVAE.")

    def _build(self, tc: dict, widths: dict, kept: dict | None) -> None:
        """post_quant_conv and the decoder at the planned widths; ``kept`` places the DupUp3D gathers."""
        self.post_quant_conv = WanCausalConv3d(tc["z_dim"], tc["z_dim"], 1)
        self.decoder = wan_decoder(tc, is_residual=True)
        groups = wan22_groups(self)
        full = {g.name: g.width for g in groups}
        kept = {k: list(v) for k, v in dict(kept or {}).items()}
        w = checked_widths(widths, full, kept)
        self._narrow(groups, w, kept)

    def _narrow(self, groups, w: dict[str, int], kept: dict[str, list[int]]) -> None:
        """Rebuild, at the planned widths, every layer (and norm, and DupUp3D shortcut) that reads or
        writes a narrowed group."""
        cin, cout, norms = {}, {}, {}
        for g in groups:
            n = w[g.name]
            if n == g.width:
                continue
            for path, role in g.producers:
                cout[path] = 2 * n if role == "rows_paired" else n
            for c in g.consumers:
                cin[c.path] = n
            for path in g.norms:
                norms[path] = n
        for path in sorted(set(cin) | set(cout)):
            layer = self.get_submodule(path)
            self._set(path, _conv_like(layer, cin.get(path, layer.in_channels), cout.get(path, layer.out_channels)))
        for path, n in norms.items():
            old = self.get_submodule(path)
            self._set(path, WanRMS_norm(n, channel_first=old.channel_first, images=old.gamma.dim() == 3,
                                        bias=isinstance(old.bias, nn.Parameter)))

        def idx(g) -> list[int]:
            return kept.get(g.name, list(range(w[g.name])))

        reader = {c.path: g for g in groups for c in g.consumers}
        writer = {p: g for g in groups for p, _ in g.producers}
        for i, blk in enumerate(self.decoder.up_blocks):
            sc = blk.avg_shortcut
            if sc is None:
                continue
            p = f"decoder.up_blocks.{i}"
            gin, gout = reader[f"{p}.resnets.0.conv1"], writer[f"{p}.upsampler.resample.1"]
            kin, kout = idx(gin), idx(gout)
            if len(kin) == gin.width and len(kout) == gout.width:
                continue
            pos = {j: n for n, j in enumerate(kin)}
            index = []
            for c in kout:
                for k in range(sc.factor):
                    j = dupup_source(sc, c, k)
                    if j not in pos:
                        raise ConfigError(f"{p}.avg_shortcut copies {gin.name} channel {j} into {gout.name} channel "
                                          f"{c}, but the student drops it; keep {gin.name} whole or tie the selections")
                    index.append(pos[j])
            blk.avg_shortcut = IndexedDupUp3D(len(kin), len(kout), sc.factor_t, sc.factor_s, index)


class Wan22StudentAdapter(WanStudentAdapter):
    """A pruned (and optionally operator-swapped) Wan 2.2 student behind the lab's decoder interface."""

    vae_class = Wan22StudentVAE
    adapter_kind = "wan2.2-student"
    arch = WAN22


register_adapter(Wan22StudentAdapter.adapter_kind, Wan22StudentAdapter)
