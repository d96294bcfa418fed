"""The fused runtime for LTX-Video decoders (registered for the LTX-Video family; lab.runtime.fused): diffusers'
``AutoencoderKLLTXVideo`` and the lab's pruned, operator-swapped students of it, on the same weights, whole
clips at a time (LTX-Video 0.9 decodes a clip in one call).

Where the traffic is (``lab trace``): the RMS norms of the resnets, eager a chain of float32 casts, powers,
means and products (for a student's folded norms, a per-position quadratic form), about 40 of the student's
67 GB at 480x832x81. So every resnet whose norms have a kernel (lab.runtime.fused.norms) runs as:

- norm + SiLU as one kernel, written straight into the next conv's input buffer, behind the frames its
  temporal padding needs; the padding frames are filled by copying the edge frames (LTX pads time by
  replicating them), instead of eager's ``repeat`` + ``cat`` of the whole clip;
- the conv (or the operator that replaced it) over the buffer, with its own spatial padding;
- where cuDNN runs the convs (CUDA, and the trace), without their biases: norm2's kernel adds conv1's and
  the residual kernel conv2's, instead of a pass of their own each (as in lab.families.wan.fused).

Resnets with timestep conditioning or noise injection (the 0.9.1+ decoders) keep their eager forward, as
do the upsamplers and the shortcut's LayerNorm; the head's norm_out + SiLU is one kernel written into
conv_out's time-padded input. The convs' input buffers are channels-last (``memory_format``, as Wan's): cuDNN
runs depthwise 3D convs (the students' ``dwsep3d``) only in channels-last, and CUDA's own
``conv_depthwise3d`` for NCDHW is several times slower (``lab trace`` counts those as
``native_depthwise3d_convs``); the norm kernels read either layout and write the buffer's. Installed like
Wan's (lab.families.wan.fused): fused ``forward``s on the resnet instances, removed by ``uninstall``.
Inference only. LTX-2's runtime (lab.families.ltx2.fused) is this one with LTX-2's convs, streams and head.
"""

from __future__ import annotations

import torch
from diffusers.models.autoencoders.autoencoder_kl_ltx import LTXVideoCausalConv3d, LTXVideoResnetBlock3d
from torch import nn

from lab.errors import LabError
from lab.families.ltx.arch import LTX
from lab.families.ltx.student import LTXStudentResnetBlock3d
from lab.ops.operators import SwapOp
from lab.runtime.fused import register_fused_runtime
from lab.runtime.fused.norms import fusable_norm, norm_act
from lab.runtime.fused.ops import bias_residual_add, folds_conv_bias
from lab.runtime.fused.operators import BIASED_CONV, OPERATOR_RULES, run_conv


def _time_padding(conv: nn.Module) -> tuple[int, int]:
    """(front, back) frames an LTX conv or operator pads time with, by repeating the edge frames."""
    if isinstance(conv, SwapOp):
        if conv.time.mode not in ("replicate-causal", "replicate-symmetric"):
            raise LabError(f"an LTX operator padding time as {conv.time.mode} is not fused")
        return (0, 0) if conv.temporal_mixing == "none" else (conv.time.front, conv.time.back)
    kt = conv.kernel_size[0]
    return (kt - 1, 0) if conv.is_causal else ((kt - 1) // 2, (kt - 1) // 2)


def replicate_edges(buf: torch.Tensor, front: int, t: int, back: int) -> None:
    """Fill the ``front`` frames before and the ``back`` frames after ``buf``'s ``t`` written frames by repeating
    the first and last of them, as LTX's convs pad time (in place; any layout)."""
    if front:
        buf[:, :, :front].copy_(buf[:, :, front:front + 1].expand(-1, -1, front, -1, -1))
    if back:
        buf[:, :, front + t:].copy_(buf[:, :, front + t - 1:front + t].expand(-1, -1, back, -1, -1))


class FusedLTX:
    """The fused runtime state of one LTX-Video VAE (teacher or student). LTX-2's (lab.families.ltx2.fused)
    subclasses it: the family's classes (``RESNETS``, ``CONV``) and the hooks ``_normed_conv``,
    ``_shortcut`` and ``_install_head`` are what differ."""

    #: the resnet classes this runtime fuses (diffusers' and the lab students'); exact types: LTX-2's student
    #: resnet subclasses the LTX-Video one but calls its convs and norms differently
    RESNETS: tuple[type, ...] = (LTXVideoResnetBlock3d, LTXStudentResnetBlock3d)
    #: the family's causal conv (an operator of lab.ops may stand in its place)
    CONV: type = LTXVideoCausalConv3d
    FAMILY = "LTX-Video"
    #: lab.runtime.fused.subpixel folds a nearest upsample into the conv after it; LTX has none to fold
    why_no_subpixel = "its upsamplers are sub-pixel convs already (a conv, then depth-to-space)"

    def __init__(self, vae: nn.Module, memory_format=torch.channels_last_3d, graphs: bool = False,
                 subpixel: bool = False):
        self.check(vae)
        self.vae = vae
        self.memory_format = memory_format
        self.graphs = False  # whole clips (or, in LTX-2, stream chunks of any length): no steady step to replay
        self.subpixel = None
        self.fold_conv_bias: bool | None = None  # None: where cuDNN runs the convs (ops.folds_conv_bias)
        self.blocks = [m for m in vae.decoder.modules() if self.fusable_resnet(m)]
        self.installed: dict[nn.Module, object] = {}

    # ----- what this runtime covers ----------------------------------------------------------------
    @classmethod
    def fusable_resnet(cls, block: nn.Module) -> bool:
        """A resnet whose norms have kernels, whose convs have rules, and that carries no timestep conditioning
        or noise."""
        if type(block) not in cls.RESNETS:
            return False
        if any(getattr(block, a, None) is not None for a in ("scale_shift_table", "shift_scale_1",
                                                             "per_channel_scale1")):
            return False
        convs_ok = all(type(c) in OPERATOR_RULES or isinstance(c, cls.CONV) for c in (block.conv1, block.conv2))
        return convs_ok and fusable_norm(block.norm1) and fusable_norm(block.norm2)

    @classmethod
    def check(cls, vae: nn.Module) -> None:
        """Raise a LabError naming what this runtime does not cover in ``vae``."""
        dec = getattr(vae, "decoder", None)
        if dec is None or not any(type(m) in cls.RESNETS for m in dec.modules()):
            raise LabError(f"the {cls.FAMILY} fused runtime covers {cls.FAMILY} decoders "
                           f"({cls.RESNETS[0].__name__} resnets)")
        if not any(cls.fusable_resnet(m) for m in dec.modules()):
            raise LabError(f"no resnet of this {cls.FAMILY} decoder can be fused (timestep conditioning or noise "
                           f"injection in every block); decode it eagerly")

    # ----- installing into the model ------------------------------------------------------------
    def install(self) -> None:
        for block in self.blocks:
            block.forward = self._forward(block)
            self.installed[block] = block.forward
        self._install_head()

    def _install_head(self) -> None:
        dec = self.vae.decoder
        if _fusable_head(dec):
            # diffusers' decoder runs norm_out on a channels-last view, then conv_act, then conv_out: the fused
            # norm_out writes norm + SiLU into conv_out's padded input (a channels-last view of it goes back
            # to the decoder), conv_act passes it through, conv_out convolves the whole buffer.
            self._head = None
            for m, fwd in ((dec.norm_out, self._norm_out), (dec.conv_act, self._conv_act), (dec.conv_out, self._conv_out)):
                m.forward = fwd
                self.installed[m] = fwd

    def uninstall(self) -> None:
        for m in self.installed:
            m.__dict__.pop("forward", None)
        self.installed = {}

    def base_forward(self, module: nn.Module):
        return self.installed.get(module)

    # ----- the head -------------------------------------------------------------------------------------
    def _norm_out(self, x_last: torch.Tensor) -> torch.Tensor:
        dec = self.vae.decoder
        x = x_last.movedim(-1, 1)
        front, back = _time_padding(dec.conv_out)
        n, c, t, h, w = x.shape
        buf = torch.empty(n, c, front + t + back, h, w, dtype=x.dtype, device=x.device,
                          memory_format=self.memory_format)
        inner = buf[:, :, front:front + t]
        norm_act(dec.norm_out, x, True, inner)
        self._head = (buf, inner, front, back)
        return inner.movedim(1, -1)

    def _conv_act(self, x: torch.Tensor) -> torch.Tensor:
        return x  # SiLU already applied by the fused norm_out

    def _conv_out(self, x: torch.Tensor) -> torch.Tensor:
        if self._head is None or x.data_ptr() != self._head[1].data_ptr():
            raise LabError("the fused LTX head runs norm_out, conv_act and conv_out in diffusers' order only")
        buf, inner, front, back = self._head
        self._head = None
        replicate_edges(buf, front, inner.shape[2], back)
        return run_conv(self.vae.decoder.conv_out.conv, buf)

    # ----- a resnet -----------------------------------------------------------------------------------------
    def conv_bias(self, conv: nn.Module) -> torch.Tensor | None:
        """The bias ``_normed_conv(..., bias=False)`` leaves out."""
        return conv.conv.bias if isinstance(conv, self.CONV) else BIASED_CONV[type(conv)](conv).bias

    def _conv_over(self, conv: nn.Module, buf: torch.Tensor, bias: bool, padded: bool = False) -> torch.Tensor:
        """The family's conv (or the operator in its place) over its padded input buffer; ``padded``: the buffer
        holds the spatial padding too."""
        if isinstance(conv, self.CONV):
            return run_conv(conv.conv, buf, bias, padded)
        return OPERATOR_RULES[type(conv)](conv, buf, bias, padded)

    def _normed_conv(self, norm: nn.Module, conv: nn.Module, x: torch.Tensor, causal: bool | None,
                     pre_bias: torch.Tensor | None = None, bias: bool = True) -> torch.Tensor:
        """conv(SiLU(norm(x + pre_bias))) with the norm's output written into the conv's time-padded input
        (``memory_format``); without the conv's bias (``conv_bias(conv)``) unless ``bias``. LTX-Video's convs
        fix their causality when built (``causal`` is LTX-2's call argument)."""
        front, back = _time_padding(conv)
        n, c, t, h, w = x.shape
        buf = torch.empty(n, c, front + t + back, h, w, dtype=x.dtype, device=x.device,
                          memory_format=self.memory_format)
        norm_act(norm, x, True, buf[:, :, front:front + t], pre_bias=pre_bias)
        replicate_edges(buf, front, t, back)
        return self._conv_over(conv, buf, bias)

    def _shortcut(self, block: nn.Module, inputs: torch.Tensor, fold: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The resnet's shortcut of ``inputs``, and the bias it left for the residual kernel (``fold``)."""
        if block.norm3 is not None:
            inputs = block.norm3(inputs.movedim(1, -1)).movedim(-1, 1)
        if block.conv_shortcut is not None:
            inputs = block.conv_shortcut(inputs)  # LTX-Video's: a 1x1 causal conv of its own, run as it is
        return inputs, None

    def _forward(self, block: nn.Module):
        def forward(inputs: torch.Tensor, temb=None, generator=None, causal: bool | None = None) -> torch.Tensor:
            if torch.is_grad_enabled() and any(p.requires_grad for p in block.parameters()):
                raise LabError("the fused runtime is for inference (its kernels have no gradients); train with the "
                               "eager decoder (lab.runtime.fused.set_fused(decoder, False))")
            fold = folds_conv_bias(inputs, self.fold_conv_bias)
            h = self._normed_conv(block.norm1, block.conv1, inputs, causal, bias=not fold)
            h = self._normed_conv(block.norm2, block.conv2, h, causal,
                                  pre_bias=self.conv_bias(block.conv1) if fold else None, bias=not fold)
            shortcut, shortcut_bias = self._shortcut(block, inputs, fold)
            if fold:  # conv1's bias went to norm2's kernel; conv2's (and the shortcut's) go to the residual kernel
                return bias_residual_add(h, self.conv_bias(block.conv2), shortcut, shortcut_bias)
            return h.add_(shortcut)
        return forward


def _fusable_head(dec: nn.Module) -> bool:
    """norm_out + SiLU + conv_out with no timestep conditioning between them (LTX-Video 0.9)."""
    return getattr(dec, "time_embedder", None) is None and fusable_norm(dec.norm_out) \
        and isinstance(dec.conv_out, LTXVideoCausalConv3d) and isinstance(getattr(dec, "conv_act", None), nn.SiLU)


# Not the default on the CPU: the minis gain there (17x128x128, 2 threads: mini-ltx 3.3x, its student 1.2x; 1 thread
# 3.4x, 1.4x), but the full-size ltx-video, what a user with real weights decodes, loses (random weights, 9x128x128,
# 2 threads: 0.93x; its big weights make the convs weight-bound, lab.runtime.fused.conv). CUDA waits for the perf
# phase, as Wan's does.
register_fused_runtime(LTX.name, FusedLTX, FusedLTX.check)
