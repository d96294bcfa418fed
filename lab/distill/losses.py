"""Loss terms, composable by name with weights (a phase's ``losses = {name = weight}``).

Each term is ``fn(batch: LossInputs) -> scalar tensor`` (or ``(scalar, {sub-key: value})`` for terms
that also report parts, like the per-stage feature losses). ``register_loss`` adds a term; the
lightweight decoders (issue 8) reuse the same set through the same trainer.

Terms:
    pixel_teacher_l1 / pixel_teacher_mse   student vs the teacher's decode
    pixel_real_l1 / pixel_real_mse         student vs the real clip
    perceptual / perceptual_teacher        LPIPS (VGG) per frame vs the real clip / the teacher decode
    feature                                mean over aligned stages of MSE(student, teacher) / mean(teacher^2)
    temporal                               L1 between consecutive-frame differences of student and teacher
    gan                                    hinge generator loss of a 3D PatchGAN (see PatchGAN3D)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lab.errors import ConfigError


@dataclass
class LossInputs:
    student: torch.Tensor                 # (N, 3, T, H, W), unclamped
    teacher: torch.Tensor                 # teacher decode, [-1, 1]
    real: torch.Tensor                    # the real clip window, [-1, 1]
    features: dict = field(default_factory=dict)   # stage -> (student map, teacher map), already aligned
    lpips: nn.Module | None = None
    discriminator: nn.Module | None = None
    frame_weights: torch.Tensor | None = None      # (T,) the pixel terms' weight per frame; None: all equal


LOSSES: dict[str, Callable] = {}


def register_loss(name: str, fn: Callable | None = None):
    """Add a loss term under ``name`` (usable as a decorator)."""
    def add(f):
        LOSSES[name] = f
        return f
    return add(fn) if fn is not None else add


def _frames(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 1, 3, 4).reshape(-1, 3, *x.shape[-2:])


def pixel_loss(x: torch.Tensor, y: torch.Tensor, kind: str, weights: torch.Tensor | None) -> torch.Tensor:
    """L1 or MSE of (N, C, T, H, W) videos, each frame weighted by ``weights`` (T,); without, torch's own loss."""
    if weights is None:
        return F.l1_loss(x, y) if kind == "l1" else F.mse_loss(x, y)
    err = (x - y).abs() if kind == "l1" else (x - y).square()
    per_frame = err.mean(dim=(0, 1, 3, 4))
    return (per_frame * weights).sum() / weights.sum()


register_loss("pixel_teacher_l1", lambda b: pixel_loss(b.student, b.teacher, "l1", b.frame_weights))
register_loss("pixel_teacher_mse", lambda b: pixel_loss(b.student, b.teacher, "mse", b.frame_weights))
register_loss("pixel_real_l1", lambda b: pixel_loss(b.student, b.real, "l1", b.frame_weights))
register_loss("pixel_real_mse", lambda b: pixel_loss(b.student, b.real, "mse", b.frame_weights))


@register_loss("perceptual")
def perceptual(b: LossInputs):
    return b.lpips(_frames(b.student.clamp(-1, 1)), _frames(b.real)).mean()


@register_loss("perceptual_teacher")
def perceptual_teacher(b: LossInputs):
    return b.lpips(_frames(b.student.clamp(-1, 1)), _frames(b.teacher)).mean()


@register_loss("feature")
def feature(b: LossInputs):
    # Normalized by the teacher map's mean square: raw Wan stage activations reach 1e3, so a plain MSE
    # would be 1e5-1e6 and drown every other term; relative MSE is ~1 at the start for every stage.
    parts = {f"feat/{s}": F.mse_loss(st, te) / te.detach().pow(2).mean().clamp_min(1e-6)
             for s, (st, te) in b.features.items()}
    return torch.stack(list(parts.values())).mean(), parts


@register_loss("temporal")
def temporal(b: LossInputs):
    ds = b.student[:, :, 1:] - b.student[:, :, :-1]
    dt = b.teacher[:, :, 1:] - b.teacher[:, :, :-1]
    return F.l1_loss(ds, dt)


@register_loss("gan")
def gan_generator(b: LossInputs):
    return -b.discriminator(b.student).mean()


def adaptive_gan_factor(rec: torch.Tensor, gan: torch.Tensor, weight: torch.Tensor, max_factor: float = 1e4) -> float:
    """||d rec / d weight|| / (||d gan / d weight|| + 1e-4), clamped to [0, max_factor] (VQGAN's adaptive
    weight, taken at the generator's output layer ``weight``); 1.0 when either term does not reach it.
    The graph is kept for the real backward pass."""
    if not (torch.is_tensor(rec) and rec.requires_grad and gan.requires_grad):
        return 1.0
    g_rec = torch.autograd.grad(rec, weight, retain_graph=True, allow_unused=True)[0]
    g_gan = torch.autograd.grad(gan, weight, retain_graph=True, allow_unused=True)[0]
    if g_rec is None or g_gan is None:
        return 1.0
    return min(max(float(g_rec.norm()) / (float(g_gan.norm()) + 1e-4), 0.0), float(max_factor))


#: Terms that need something the run may not have; the trainer drops them (with a logged reason).
NEEDS = {"perceptual": "lpips", "perceptual_teacher": "lpips", "feature": "features", "gan": "discriminator"}
#: Terms that count as "the pixel loss" for the phase-2 feature-weight decay.
PIXEL_TERMS = ("pixel_teacher_l1", "pixel_teacher_mse", "pixel_real_l1", "pixel_real_mse")


def output_layer_weight(student, z: torch.Tensor) -> torch.nn.Parameter:
    """The weight of the student's output layer: the last layer with a matrix/kernel weight to finish during
    a forward (found with hooks on a small decode), where the adaptive GAN weight compares gradients."""
    order = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(mod)) for m in student.modules()
             if isinstance(getattr(m, "weight", None), torch.nn.Parameter) and m.weight.ndim >= 2
             and not list(m.children())]
    try:
        with torch.no_grad():
            student.decode_with_grad(z[:1, :, :2])
    finally:
        for h in hooks:
            h.remove()
    if not order:
        raise ConfigError("gan.adaptive: the student has no layer with a weight matrix to compare gradients at; "
                          "set gan.adaptive = false.")
    return order[-1].weight


class PatchGAN3D(nn.Module):
    """A 3D PatchGAN discriminator (video in [-1, 1] -> a map of real/fake logits), spectral-normed
    strided Conv3d stack with LeakyReLU; trained with the hinge loss."""

    def __init__(self, channels: int = 32, layers: int = 3):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        mods, c = [], 3
        for i in range(layers):
            out = channels * 2 ** i
            mods += [sn(nn.Conv3d(c, out, (3, 4, 4), stride=(1, 2, 2), padding=(1, 1, 1))), nn.LeakyReLU(0.2)]
            c = out
        mods.append(nn.Conv3d(c, 1, (3, 3, 3), padding=1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def discriminator_hinge(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - disc(real)).mean() + F.relu(1 + disc(fake.detach())).mean()
