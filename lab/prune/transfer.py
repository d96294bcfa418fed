"""Initialise a pruned student from its teacher: keep the selected filters, fold the least-squares
reconstruction of the dropped channels into every consumer's input weights, and fit the folded RMS
norms of pruned groups.

Fold, for a consumer layer with weight K (out, in, *kernel) reading channels x (what the layer sees,
after its norm and SiLU if it has one): the teacher computes sum_i K[:, i] * x_i. With x_D ~= W x_S + b
fitted on the recorded inputs, K[:, S] + K[:, D] W reads only the kept channels, and K[:, D] b (summed
over the kernel taps) moves into the bias. For a linear consumer on exactly low-rank inputs this is
exact (up to zero padding at borders when b != 0).

RMS norm: Wan's y = x / rms(x) * gamma; the student's norm sees only x_S. A folded norm
(lab.models.students.folded_norm, what lab.prune builds for pruned groups) divides by the teacher's rms
estimated from x_S (``folded_norm_state``, fitted on the Gram recorded at the norm's input). A plain
narrower Wan RMS norm (students saved before folded norms existed, or built without them) instead gets
gamma_S scaled by rms(x_S) / rms(x), from the second moments at the norm's input.
"""

from __future__ import annotations

import torch
from torch import nn

from lab.analysis import ChannelAnalysis, fold_weights
from lab.analysis.linalg import FOLD_RIDGE
from lab.arch.groups import D2S_FACTOR, ChannelGroup, norm_tap
from lab.errors import LabError
from lab.progress import track


def fold_into(weight: torch.Tensor, bias: torch.Tensor | None, gram: torch.Tensor, keep: list[int],
              ridge: float = FOLD_RIDGE):
    """(weight, bias) of a consumer reading all channels -> reading ``keep`` only, with the dropped
    channels' (ridge-regularised) least-squares reconstruction folded in. Works in float64; returns
    float64 tensors on the CPU (where the fold's least squares ran, also for a CUDA teacher)."""
    w = weight.detach().to("cpu", torch.float64)
    dropped, wls, b = fold_weights(gram.cpu(), keep, ridge)
    new_w = w[:, keep].clone()
    new_b = None if bias is None else bias.detach().to("cpu", torch.float64).clone()
    if dropped:
        wd = w[:, dropped]
        new_w += torch.einsum("od...,ds->os...", wd, wls)
        shift = torch.einsum("od...,d->o...", wd, b).reshape(w.shape[0], -1).sum(dim=1)
        if new_b is None:
            raise LabError("folding needs a bias on the consumer layer to absorb the constant term")
        new_b += shift
    return new_w, new_b


def folded_norm_state(analysis: ChannelAnalysis | None, path: str, keep: list[int], width: int,
                      ridge: float = FOLD_RIDGE) -> dict:
    """quad/lin/const (float64 state-dict entries under ``path``) of a folded RMS norm:
    C * rms^2 ~= ||x_S||^2 + ||W x_S + b||^2 + e, with the least-squares reconstruction (W, b) of the
    dropped channels (ridge as for the conv folds) and its mean residual energy e, fitted on the norm's
    recorded input. Without statistics: plain rms over the kept channels."""
    k = len(keep)
    if analysis is None:
        return {f"{path}.quad": torch.eye(k, dtype=torch.float64) / k, f"{path}.lin": torch.zeros(k, dtype=torch.float64),
                f"{path}.const": torch.zeros((), dtype=torch.float64)}
    st = analysis.stats.get(norm_tap(path))
    if st is None or st.count == 0 or st.gram is None:
        raise LabError(f"no full statistics (Gram) for RMS norm {path}; re-run the analysis on this teacher "
                       f"with this lab version (lab.analysis.analyze records them)")
    g = st.augmented()
    dropped, w, b = fold_weights(g, keep, ridge)
    # Residual energy per position: P = [-W | I | -b] on (x_S, x_D, 1), energy = trace(P G P^T) / n.
    p = torch.zeros(len(dropped), width + 1, dtype=torch.float64)
    p[:, keep] = -w
    p[:, dropped] = torch.eye(len(dropped), dtype=torch.float64)
    p[:, width] = -b
    resid = float(torch.einsum("ij,jk,ik->", p, g, p)) / float(st.count)
    return {f"{path}.quad": (torch.eye(k, dtype=torch.float64) + w.T @ w) / width,
            f"{path}.lin": 2.0 * (w.T @ b) / width,
            f"{path}.const": torch.tensor((float(b @ b) + max(resid, 0.0)) / width, dtype=torch.float64)}


def _rows(role: str, keep: list[int], out_channels: int) -> list[int]:
    if role == "rows_paired":
        c = out_channels // 2
        return list(keep) + [c + i for i in keep]
    if role == "rows_d2s":  # depth-to-space: rows c*8 .. c*8+7 are channel c's sub-positions
        return [c * D2S_FACTOR + k for c in keep for k in range(D2S_FACTOR)]
    return list(keep)


def transfer(teacher_vae: nn.Module, student_vae: nn.Module, groups: list[ChannelGroup], kept: dict[str, list[int]],
             analysis: ChannelAnalysis | None, fold: bool = True, ridge: float = FOLD_RIDGE) -> dict:
    """Copy the teacher's weights into the student. ``kept``: group name -> kept channel indices (only
    pruned groups). Returns a small report (what was folded, norm scales; "folded" for folded norms)."""
    plan: dict[str, dict] = {}  # layer path -> {"in": (group, keep), "out": (role, keep)}
    norms: dict[str, tuple[list[int], int]] = {}  # norm path -> (kept channels, teacher width)
    for g in groups:
        if g.name not in kept:
            continue
        keep = kept[g.name]
        for path, role in g.producers:
            plan.setdefault(path, {})["out"] = (role, keep)
        for c in g.consumers:
            plan.setdefault(c.path, {})["in"] = (g, keep)
        for n in g.norms:
            norms[n] = (keep, g.width)

    t_state = teacher_vae.state_dict()
    new_state = {}
    handled = set()
    report = {"folded": [], "sliced": [], "norm_scales": {}}
    for path, todo in track(plan.items(), "prune: transfer weights", unit="layer"):
        layer = teacher_vae.get_submodule(path)
        w, b = layer.weight.detach().to(torch.float64), None if layer.bias is None else layer.bias.detach().to(torch.float64)
        if "in" in todo:
            g, keep = todo["in"]
            gram = analysis.consumer_gram(path) if (fold and analysis is not None) else None
            if gram is not None:
                w, b = fold_into(w, b, gram, keep, ridge)
                report["folded"].append(path)
            else:
                w = w[:, keep]
                report["sliced"].append(path)
        if "out" in todo:
            role, keep = todo["out"]
            rows = _rows(role, keep, w.shape[0])
            w = w[rows]
            b = None if b is None else b[rows]
        new_state[f"{path}.weight"] = w
        handled.add(f"{path}.weight")
        if b is not None:
            new_state[f"{path}.bias"] = b
            handled.add(f"{path}.bias")
    for path, (keep, width) in norms.items():
        gamma = teacher_vae.get_submodule(path).gamma.detach().to(torch.float64)
        if hasattr(student_vae.get_submodule(path), "quad"):  # a folded norm (lab.models.students.folded_norm)
            new_state[f"{path}.gamma"] = gamma[keep]
            new_state.update(folded_norm_state(analysis, path, keep, width, ridge))
            report["norm_scales"][path] = "folded"
        else:
            scale = analysis.rms_ratio(path, keep) if analysis is not None else 1.0
            new_state[f"{path}.gamma"] = gamma[keep] * scale
            report["norm_scales"][path] = scale
        handled.add(f"{path}.gamma")

    load_student_state(student_vae, t_state, new_state,
                       missing=("teacher and student come from different decoder families. Build the student "
                                "from this teacher (lab.prune.prune)."),
                       handled=handled)
    return report


def load_student_state(student_vae, t_state: dict, computed: dict, missing: str, handled=None) -> None:
    """Load the student with the tensors pruning computed, and the teacher's tensor of the same name for
    everything else (layers whose width did not change); every shape must match the student's.
    ``missing`` ends the error for a student tensor neither side has; ``handled`` (keys pruning
    computed on purpose) sharpens the error for a shape mismatch elsewhere."""
    out = {}
    for key, target in student_vae.state_dict().items():
        src = computed.get(key, t_state.get(key))
        if src is None:
            raise LabError(f"the student has a tensor {key} that the teacher lacks and pruning did not compute; "
                           f"{missing}")
        if tuple(src.shape) != tuple(target.shape):
            hint = "" if handled is None or key in handled else \
                " (a layer whose width changed is missing from the channel groups)"
            raise LabError(f"teacher/student mismatch at {key}: teacher gives {tuple(src.shape)}, student expects "
                           f"{tuple(target.shape)}{hint}. Was the student built from another teacher?")
        out[key] = src.to(target.dtype)
    student_vae.load_state_dict(out, strict=True)
