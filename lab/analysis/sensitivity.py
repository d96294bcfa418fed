"""How much the decoder's *output* cares about each channel a layer reads: the Gram of the output's
Jacobian with respect to that layer's input, estimated with random output probes (Hutchinson).

Why: channel independence (lab.analysis.linalg) scores a selection by the least-squares residual of
the dropped channels, every channel weighted by its variance. At small keep ratios that proxy can be
blind to what the decoder does next: on the mini-wan teacher at 2 of 16 channels in up3, the residual
ranks the 120 possible pairs almost inversely to the PSNR of the student they give (Spearman +0.2),
because the highest-variance channels are not the ones the output depends on. Weighting the residual
by the output's sensitivity fixes the ranking (Spearman -0.73 on the same pairs).

The estimate: for a consumer layer with input u (channels C at every position), and the decoder
output y, a fold error e in u changes y by J e to first order, so the expected squared output error
is trace(M R) with R the residual Gram of the fold and M = E_pos[J^T J] (C x C). With a random probe
v ~ N(0, I) in output space, g = J^T v = d(v . y)/du satisfies E[g g^T] = J^T J, so one backward pass
per probe gives every consumer's M at once (a tensor hook on each consumer's input).

Cost: ``probes`` forward+backward passes per calibration clip, holding the clip's activations for the
backward (choose a small calibration size for full-size decoders).
"""

from __future__ import annotations

from typing import Iterable

import torch

from lab.analysis.stats import chunk_dtype
from lab.arch.groups import ChannelGroup
from lab.errors import LabError


def output_sensitivity(decoder, latents: Iterable[torch.Tensor] | torch.Tensor, groups: list[ChannelGroup], *,
                       probes: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """consumer path -> M (C x C, float64, on the CPU): the mean over positions and probes of g g^T, with g the
    gradient of a random projection of the decoder output with respect to the consumer's input."""
    clips = [latents] if torch.is_tensor(latents) else list(latents)
    if not clips:
        raise LabError("output_sensitivity() needs at least one latent clip")
    if probes < 1:
        raise LabError(f"probes must be >= 1, got {probes}")
    vae = decoder.vae
    paths = sorted({c.path for g in groups for c in g.consumers})
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def make_hook(path: str):
        def pre_hook(module, args):
            x = args[0]
            if torch.is_tensor(x) and x.requires_grad:
                def grad_hook(grad):
                    # Accumulated in float64 on the gradient's device; each probe's product in the chunk
                    # precision of ChannelStats (float32 on accelerators, float64 on the CPU).
                    q = grad.detach().to(chunk_dtype(grad)).transpose(0, 1).reshape(grad.shape[1], -1)
                    sums[path] = sums.get(path, 0) + (q @ q.T).double()
                    counts[path] = counts.get(path, 0) + q.shape[1]
                x.register_hook(grad_hook)
        return pre_hook

    handles = []
    # The teacher's weights stay frozen; gradients flow to the activations only (the latents are the leaf).
    flags = [(p, p.requires_grad) for p in vae.parameters()]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    try:
        for path in paths:
            handles.append(vae.get_submodule(path).register_forward_pre_hook(make_hook(path)))
        for p, _ in flags:
            p.requires_grad_(False)
        for z in clips:
            decoder.check_latents(z)
            for _ in range(probes):
                leaf = z.detach().clone().requires_grad_(True)
                with torch.enable_grad():
                    y = decoder.decode_with_grad(leaf)
                    v = torch.randn(y.shape, generator=gen, dtype=torch.float32).to(device=y.device, dtype=y.dtype)
                    (y * v).sum().backward()
    finally:
        for h in handles:
            h.remove()
        for p, flag in flags:
            p.requires_grad_(flag)
    if not sums:
        raise LabError("no consumer layer of these channel groups ran during the sensitivity probes; "
                       "the groups do not belong to this decoder.")
    # On the CPU, with the Grams they are combined with (selection and refinement solve there).
    return {p: sums[p].cpu() / counts[p] for p in sums}
