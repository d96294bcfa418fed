"""The fused runtime for Wan 2.1-style decoders (registered for the Wan family; lab.runtime.fused): diffusers' ``AutoencoderKLWan`` and the lab's pruned,
operator-swapped students of it, on the same weights, one causal step at a time.

What differs from diffusers' eager step (lab.runtime.fused says what stays the same):

- **Causal caches without copies.** Every conv that looks at past frames owns an input buffer of
  ``front + t`` frames (``front``: the frames its causal padding needs, 2 for a 3-tap conv) that starts as
  zeros. The cache lives in its first ``front`` frames; the producer (the norm + SiLU kernel, or the
  residual add before a temporal upsampler) writes the step's ``t`` new frames straight behind them; the
  conv reads the whole buffer with the spatial padding folded into its own ``padding``; one copy then moves
  the last ``front`` frames to the front. Eager, the same step clones the cache, concatenates it with the
  new frames and pads the result (``cat`` + ``pad`` + ``clone``).
- **Fused norm + SiLU** (lab.runtime.fused.ops): one read and one write instead of an fp32 cast chain.
- **Channels-last** buffers end to end (``memory_format``): a time slice of NDHWC is NHWC, so per-frame 2D
  convs, the attention's 1x1 convs and the upsamplers run on views, and cuDNN's channels-last kernels
  (depthwise 3D convs included) are the ones that run.
- **Upsampling in the tensor's dtype**: nearest is a gather, bit-identical to diffusers' float32 round
  trip; the temporal upsampler's interleave and the 2x upsample are one op. With ``subpixel``
  (``@fused+subpixel``) the upsample and the resample conv are one transposed conv instead
  (lab.runtime.fused.subpixel).
- **Conv biases in the next kernel** (where cuDNN runs the convs: CUDA, and the trace): cuDNN takes no
  bias, so ATen adds it after the conv in a pass of its own. Each resnet's convs run without theirs:
  norm2's kernel adds conv1's (``pre_bias``), and one residual kernel adds conv2's and the shortcut's
  (``bias_residual_add``); a temporal upsampler's time conv runs without its own, which the interleave of its
  output adds. Each is rounded as that pass would round it.

It is installed into the model (``FusedWan.install``): the decoder's stage modules (post_quant_conv,
conv_in, mid_block, up_blocks, norm_out, conv_out, decoder) get fused ``forward``s on the instance, so
diffusers' own decode loop, the lab's chunked decode and streams, tiling, and stage hooks (profile, trace)
all run it unchanged; ``uninstall`` removes them and the model is eager again. A step with
``first_chunk=True`` starts a new clip (caches to zeros), as diffusers' feature cache does.
Inference only: under autograd it refuses (training runs the eager modules).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lab.errors import LabError
from lab.families.wan.arch import WAN
from lab.ops.operators import SwapOp
from lab.runtime.fused import register_fused_runtime
from lab.runtime.fused.conv import conv
from lab.runtime.fused.norms import norm_act
from lab.runtime.fused.operators import BIASED_CONV, OPERATOR_RULES, _fold, _unfold
from lab.runtime.fused.ops import bias_residual_add, folds_conv_bias, interleave, interleave_upsample
from lab.runtime.fused.subpixel import SubpixelConvs, is_subpixel_conv

class CausalConv:
    """One causal conv (a ``WanCausalConv3d`` or an operator that replaced one) with its input buffer."""

    def __init__(self, layer: nn.Module, memory_format):
        self.layer = layer
        self.memory_format = memory_format
        if isinstance(layer, SwapOp):
            if type(layer) not in OPERATOR_RULES:  # exact type: a subclass may compute something else
                raise LabError(f"the fused runtime has no rule for the operator '{layer.op_name}' "
                               f"({type(layer).__name__}); add one to lab.runtime.fused.operators.OPERATOR_RULES")
            if layer.time.mode != "zeros-cached":
                raise LabError(f"operator {layer.op_name} pads time as {layer.time.mode}; Wan's are zeros-cached")
            self.front = 0 if layer.temporal_mixing == "none" else layer.time.front
        else:
            pads = layer._padding  # (w, w, h, h, 2*pt, 0)
            if pads[0] != pads[1] or pads[2] != pads[3] or pads[5] != 0:
                raise LabError(f"a WanCausalConv3d with padding {pads} is not fused")
            self.front = pads[4]
            self.spatial = (pads[2], pads[0])
        self.buffer: torch.Tensor | None = None
        self.t = 0

    def reset(self) -> None:
        self.buffer = None

    def input(self, like: torch.Tensor, channels: int | None = None) -> torch.Tensor:
        """Where this step's new frames go: behind the cache in the buffer (frames, h, w of ``like``)."""
        n, c, t, h, w = like.shape
        c = channels or c
        shape = (n, c, self.front + t, h, w)
        if self.buffer is None or tuple(self.buffer.shape) != shape or self.buffer.dtype != like.dtype:
            new = torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=self.memory_format)
            if self.front:
                if self.buffer is None or self.buffer.shape[:2] + self.buffer.shape[3:] != (n, c, h, w):
                    new[:, :, :self.front].zero_()  # a new clip: zero padding in front, as diffusers
                else:
                    new[:, :, :self.front].copy_(self.buffer[:, :, :self.front])
            self.buffer = new
        self.t = t
        return self.buffer[:, :, self.front:]

    def run(self, bias: bool = True) -> torch.Tensor:
        """The conv over [cache | new frames]; then the last ``front`` input frames become the cache.
        ``bias=False``: without the conv's bias (``self.bias``), for the kernel that reads the output next."""
        x, layer = self.buffer, self.layer
        rule = OPERATOR_RULES.get(type(layer))
        if rule is not None:
            y = rule(layer, x, bias)
        else:
            y = conv(x, layer.weight, layer.bias if bias else None, layer.stride, (0, *self.spatial), layer.dilation,
                     layer.groups)
        self._shift()
        return y

    @property
    def bias(self) -> torch.Tensor | None:
        """The bias ``run(bias=False)`` leaves out."""
        conv = BIASED_CONV[type(self.layer)](self.layer) if type(self.layer) in BIASED_CONV else self.layer
        return conv.bias

    def _shift(self) -> None:
        f, t, b = self.front, self.t, self.buffer
        if not f:
            return
        if t >= f:
            b[:, :, :f].copy_(b[:, :, t:t + f])
        else:  # overlapping: frame by frame, front to back (each source is read before it is overwritten)
            for k in range(f):
                b[:, :, k].copy_(b[:, :, t + k])


class FusedWan:
    """The fused runtime state of one Wan-style VAE (``vae.decoder`` a Wan 2.1 ``WanDecoder3d``)."""

    #: why ``subpixel`` may do nothing here (None: it applies to every upsampler whose conv folds)
    why_no_subpixel = None

    def __init__(self, vae: nn.Module, memory_format=torch.channels_last_3d, graphs: bool = False,
                 subpixel: bool = False):
        self.check(vae)
        self.vae = vae
        self.graphs = graphs
        # lab.runtime.fused.subpixel: each upsampler's "nearest 2x + 3x3 conv" as one transposed conv
        self.subpixel = SubpixelConvs() if subpixel else None
        self.fold_conv_bias: bool | None = None  # None: where cuDNN runs the convs (ops.folds_conv_bias)
        self.graph: _StepGraph | None = None
        self.steps = 0
        self.memory_format = memory_format
        self.memory_format_2d = torch.channels_last if memory_format == torch.channels_last_3d \
            else torch.contiguous_format
        dec = vae.decoder
        self.convs: dict[int, CausalConv] = {}
        self.conv_in = self._conv(dec.conv_in)
        self.conv_out = self._conv(dec.conv_out)
        for m in dec.modules():
            if hasattr(m, "conv1") and hasattr(m, "conv2"):
                self._conv(m.conv1)
                self._conv(m.conv2)
            if getattr(m, "mode", None) == "upsample3d":
                self._conv(m.time_conv)
        self.installed: dict[nn.Module, object] = {}

    @staticmethod
    def check(vae: nn.Module) -> None:
        """Raise a LabError naming what this runtime does not cover in ``vae`` (a subclass checks its own)."""
        check_fusable(vae)

    def _conv(self, layer: nn.Module) -> CausalConv:
        if id(layer) not in self.convs:
            self.convs[id(layer)] = CausalConv(layer, self.memory_format)
        return self.convs[id(layer)]

    def reset(self) -> None:
        for c in self.convs.values():
            c.reset()
        self.graph = None
        self.steps = 0

    # ----- installing into the model ------------------------------------------------------------
    def install(self) -> None:
        dec = self.vae.decoder
        forwards = {self.vae.post_quant_conv: self._post_quant_conv, dec: self._decoder, dec.conv_in: self._conv_in,
                    dec.mid_block: self._mid, dec.norm_out: self._norm_out, dec.conv_out: self._conv_out}
        for i, blk in enumerate(dec.up_blocks):
            forwards[blk] = self._up_block_forward(blk)
        for m, fwd in forwards.items():
            m.forward = fwd
        self.installed = forwards

    def uninstall(self) -> None:
        for m in self.installed:
            m.__dict__.pop("forward", None)
        self.installed = {}
        self.reset()
        if self.subpixel is not None:
            self.subpixel.clear()

    def base_forward(self, module: nn.Module):
        """The forward ``module`` runs under this runtime (what torch.compile wraps, and what it restores when
        compilation is undone), or None for a module the runtime does not replace."""
        return self.installed.get(module)

    # ----- the step -----------------------------------------------------------------------------
    def _post_quant_conv(self, z: torch.Tensor, cache_x=None) -> torch.Tensor:
        # A 1x1x1 conv: no padding, no cache (eager pads by nothing, which still copies).
        pq = self.vae.post_quant_conv
        return conv(z, pq.weight, pq.bias)

    def _decoder(self, x: torch.Tensor, feat_cache=None, feat_idx=None, first_chunk: bool = False) -> torch.Tensor:
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.vae.decoder.parameters()):
            raise LabError("the fused runtime is for inference (its kernels have no gradients); train with the "
                           "eager decoder (lab.runtime.fused.set_fused(decoder, False))")
        if first_chunk:
            self.reset()
        out = self._graph_step(x) if self.graphs and x.is_cuda and not first_chunk else None
        if out is None:
            out = self._step(x, first_chunk)
        self.steps += 1
        return out

    def _graph_step(self, x: torch.Tensor) -> torch.Tensor | None:
        """A steady-state step as one CUDA graph replay: every kernel of the step (a few hundred) in one
        launch. Legal for a causal decoder because its caches are static buffers updated in place, which the
        replay updates as the eager step would. Steps 0 and 1 run eagerly (the first latent frame, and the
        first time the temporal upsamplers run: their buffers are allocated then); step 2 runs eagerly on a
        side stream (the warm-up that graph capture needs: lazy library state, cuDNN's autotuning); step 3 is
        captured and every later step of the same shape replays it. A step of another shape (a last, partial
        chunk) runs eagerly and ends the graph. The returned video is the graph's output tensor: valid until
        the next step, which is how every caller uses it (they copy it into the clip's output). None: run
        this step eagerly."""
        if self.graph is not None and self.graph.shape != (tuple(x.shape), x.dtype):
            self.graph = None
            return None
        if self.graph is None:
            if self.steps < 2:
                return None
            stream = torch.cuda.Stream(device=x.device)
            stream.wait_stream(torch.cuda.current_stream(x.device))
            if self.steps == 2:  # warm-up on the capture stream, as torch.cuda.graphs asks
                with torch.cuda.stream(stream):
                    out = self._step(x, False)
                torch.cuda.current_stream(x.device).wait_stream(stream)
                return out
            static_in = x.clone()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=stream):
                static_out = self._step(static_in, False)  # recorded, not run
            self.graph = _StepGraph(graph, static_in, static_out, (tuple(x.shape), x.dtype))
        self.graph.static_in.copy_(x)
        self.graph.graph.replay()
        return self.graph.static_out

    def _step(self, x: torch.Tensor, first_chunk: bool) -> torch.Tensor:
        dec = self.vae.decoder
        x = dec.conv_in(x)
        x = dec.mid_block(x)
        for blk in dec.up_blocks:
            x = blk(x, first_chunk)
        return dec.conv_out(dec.norm_out(x))

    def _conv_in(self, x: torch.Tensor) -> torch.Tensor:
        self.conv_in.input(x).copy_(x)  # the latents enter the channels-last buffer
        return self.conv_in.run()

    def _resnet(self, r: nn.Module, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        sc = r.conv_shortcut
        c1, c2 = self.convs[id(r.conv1)], self.convs[id(r.conv2)]
        # With fold, each conv's bias goes to the kernel that reads its output next (cuDNN would add it in a pass
        # of its own): conv1's to norm2's, conv2's and the shortcut's to the residual add.
        fold = folds_conv_bias(x, self.fold_conv_bias)
        identity = isinstance(sc, nn.Identity)
        h = x if identity else conv(x, sc.weight, None if fold else sc.bias)
        norm_act(r.norm1, x, True, c1.input(x))
        y = c1.run(bias=not fold)
        norm_act(r.norm2, y, True, c2.input(y), pre_bias=c1.bias if fold else None)
        y = c2.run(bias=not fold)
        if fold:
            return bias_residual_add(y, c2.bias, h, None if identity else sc.bias, out=out)
        if out is not None:
            return torch.add(y, h, out=out)
        return y.add_(h)

    def _attention(self, a: nn.Module, x: torch.Tensor) -> torch.Tensor:
        n, c, t, h, w = x.shape
        frames = norm_act(a.norm, _fold(x), False)
        # Channels-last, as cuDNN returns it for channels-last frames (a no-op there): q, k and v are then
        # slices of (N*T, H*W, 3C) rows, the layout diffusers hands to attention, so the same kernel runs.
        qkv = F.conv2d(frames, a.to_qkv.weight, a.to_qkv.bias).contiguous(memory_format=self.memory_format_2d)
        q, k, v = qkv.permute(0, 2, 3, 1).reshape(n * t, 1, h * w, 3 * c).chunk(3, dim=-1)
        o = F.scaled_dot_product_attention(q, k, v)
        o = o.reshape(n * t, h, w, c).permute(0, 3, 1, 2)  # channels-last view of the attention output
        return _unfold(F.conv2d(o, a.proj.weight, a.proj.bias), t).add_(x)

    def _mid(self, x: torch.Tensor) -> torch.Tensor:
        mid = self.vae.decoder.mid_block
        x = self._resnet(mid.resnets[0], x)
        for attn, r in zip(mid.attentions, mid.resnets[1:]):
            if attn is not None:
                x = self._attention(attn, x)
            x = self._resnet(r, x)
        return x

    def _up_block_forward(self, blk: nn.Module):
        def forward(x: torch.Tensor, first_chunk: bool = False) -> torch.Tensor:
            up = blk.upsamplers[0] if blk.upsamplers is not None else None
            return self._resnets_then_upsample(blk.resnets, up, x, first_chunk)
        return forward

    def _resnets_then_upsample(self, resnets: nn.ModuleList, up: nn.Module | None, x: torch.Tensor,
                               first_chunk: bool) -> torch.Tensor:
        """An up block's resnets, then its resampler (``up``, a ``WanResample`` or None). ``x`` is left as it
        is (Wan 2.2's blocks add a shortcut of it afterwards)."""
        if up is not None and up.mode not in ("upsample2d", "upsample3d"):
            raise LabError(f"a Wan up block with a '{up.mode}' resampler is not fused")
        # diffusers skips the time conv on a clip's first latent frame (its cache marker "Rep")
        temporal = up is not None and up.mode == "upsample3d" and not first_chunk
        for j, r in enumerate(resnets):
            if j == len(resnets) - 1 and temporal:
                # The block's output only feeds the time conv: the residual add writes into its buffer.
                t = x.shape[2]
                tc = self.convs[id(up.time_conv)]
                self._resnet(r, x, out=tc.input(x, channels=r.conv2.out_channels))
                # With fold, the time conv's bias is added by the interleave that reads its output.
                fold = folds_conv_bias(x, self.fold_conv_bias)
                y, bias = tc.run(bias=not fold), tc.bias if fold else None
                if self._subpixel_for(up):
                    frames = interleave(y, self.memory_format_2d, bias=bias)
                    return _unfold(self.subpixel(frames, up.resample[1]), 2 * t)
                frames = interleave_upsample(y, self.memory_format_2d, bias=bias)
                return _unfold(self._resample(up, frames), 2 * t)
            x = self._resnet(r, x)
        if up is None:
            return x
        if self._subpixel_for(up):
            return _unfold(self.subpixel(_fold(x), up.resample[1]), x.shape[2])
        frames = F.interpolate(_fold(x), scale_factor=2.0, mode="nearest-exact")
        return _unfold(self._resample(up, frames), x.shape[2])

    def _subpixel_for(self, up: nn.Module) -> bool:
        """Whether ``up``'s upsample + conv runs as one sub-pixel conv (asked for, and its conv folds)."""
        return self.subpixel is not None and is_subpixel_conv(up.resample[1])

    def _resample(self, up: nn.Module, frames: torch.Tensor) -> torch.Tensor:
        conv = up.resample[1]
        return conv._conv_forward(frames, conv.weight, conv.bias)  # the module's own padding mode, no hooks

    def _norm_out(self, x: torch.Tensor) -> torch.Tensor:
        return norm_act(self.vae.decoder.norm_out, x, True, self.conv_out.input(x))

    def _conv_out(self, _written: torch.Tensor) -> torch.Tensor:
        return self.conv_out.run()


class _StepGraph:
    """A captured steady-state step: its graph, static input and output, and the (shape, dtype) it takes."""

    def __init__(self, graph, static_in: torch.Tensor, static_out: torch.Tensor, shape: tuple):
        self.graph, self.static_in, self.static_out, self.shape = graph, static_in, static_out, shape


def check_fusable(vae: nn.Module) -> None:
    """Raise a LabError naming what the fused runtime does not cover in ``vae``."""
    dec = getattr(vae, "decoder", None)
    if dec is None or type(dec).__name__ != "WanDecoder3d" or not hasattr(vae, "post_quant_conv"):
        raise LabError("the fused runtime covers Wan 2.1-style decoders (a WanDecoder3d)")
    if any(type(b).__name__ != "WanUpBlock" for b in dec.up_blocks):
        raise LabError("this runtime fuses Wan 2.1's up blocks; Wan 2.2's residual ones have their own "
                       "(lab.families.wan.v22.fused)")
    if getattr(getattr(vae, "config", None), "patch_size", None):
        raise LabError("patchified Wan decoders are not fused yet; decode it eagerly")


# The default of lab decode and lab eval on the CPU: within 3e-6 of eager (fp32) on mini-wan and its student, and
# faster at every size measured, side by side in lab bench (2 threads; teacher, student: 9x64x64 3.3x, 1.6x;
# 17x128x128 1.9x, 3.0x; 17x256x256 2.0x, 4.4x; 1 thread at 17x128x128 1.6x, 1.8x; full-size wan2.1, random weights,
# 9x128x128: 1.15x). Its float32 3D convs run oneDNN (lab.runtime.fused.conv); before that the fused teacher lost
# below 128 px (0.86x at 64 px). CUDA joins once the device run's perf phase has timed the Triton kernels on a GPU:
# so far they have run only in Triton's interpreter.
register_fused_runtime(WAN.name, FusedWan, check_fusable, default_on=("cpu",))
