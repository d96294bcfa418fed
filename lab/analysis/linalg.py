"""The least-squares algebra of channel independence, all on augmented Gram matrices (see stats.py):
the last row/column is the constant channel, so every "predict channels from channels" problem here
is affine (it may use a bias) and the constant is always available for free.

- ``greedy_select``: forward selection of channels minimizing the residual ||X - W X_S||^2 of the
  whole map (exact greedy, via rank-one updates of the residual Gram: a pivoted Cholesky whose pivot
  is the largest reduction of the total residual, not the largest diagonal).
- ``independence_scores``: per channel, the fraction of its variance that the other channels cannot
  explain linearly (1 = fully independent, 0 = a linear combination of the others).
- ``explained_variance_curve``: variance of the whole map explained by the best k channels found
  greedily, k = 0..C.
- ``fold_weights``: the least-squares W, b with x_D ~= W x_S + b, for folding dropped channels into
  the next layer.
"""

from __future__ import annotations

import torch

from lab.errors import LabError

# Relative ridge added to Gram diagonals before solves: keeps exactly collinear channels (common in
# decoders, and exact in tests) from producing inf/NaN while changing well-posed solutions by ~1e-9.
RIDGE = 1e-12
# Residual variance (relative to the largest channel's) below which greedy selection treats a channel
# as already explained; larger than RIDGE because rank-one updates accumulate rounding error.
GREEDY_FLOOR = 1e-10


def _check_aug(g: torch.Tensor) -> int:
    if g.ndim != 2 or g.shape[0] != g.shape[1] or g.shape[0] < 2:
        raise LabError(f"expected an augmented Gram matrix of shape (C+1, C+1), got {tuple(g.shape)}")
    if g[-1, -1] <= 0:
        raise LabError("the augmented Gram has a zero count (no positions recorded)")
    return g.shape[0] - 1


def residual_gram(g: torch.Tensor) -> torch.Tensor:
    """The channels' Gram after regressing out the constant: n * covariance."""
    c = _check_aug(g)
    s = g[:c, c]
    return g[:c, :c] - torch.outer(s, s) / g[c, c]


def greedy_select(g: torch.Tensor, k: int | None = None) -> tuple[list[int], list[float]]:
    """Greedy forward selection on an augmented Gram.

    Returns (order, residuals): the first k chosen channels in order, and the total residual
    sum of squares after choosing 0, 1, ..., k of them (residuals[0] = total centered variance).
    With k=None, every channel is ranked.
    """
    c = _check_aug(g)
    k = c if k is None else k
    if not 0 <= k <= c:
        raise LabError(f"cannot select {k} of {c} channels")
    r = residual_gram(g).clone()
    floor = GREEDY_FLOOR * max(float(torch.diagonal(r).max()), 1e-300)
    order: list[int] = []
    residuals = [float(torch.diagonal(r).sum())]
    chosen = torch.zeros(c, dtype=torch.bool, device=r.device)
    by_variance = torch.argsort(torch.diagonal(r), descending=True).tolist()
    for _ in range(k):
        d = torch.diagonal(r)
        # Reduction of the total residual from adding channel j: ||r[:, j]||^2 / r[j, j].
        gain = (r * r).sum(dim=0) / d.clamp_min(floor)
        gain[chosen | (d <= floor)] = -1.0
        j = int(torch.argmax(gain))
        if gain[j] < 0:
            # Everything left is already explained exactly: take the remaining channels by variance
            # (any choice has zero residual), so callers still get k distinct channels.
            while chosen[by_variance[0]]:
                by_variance.pop(0)
            j = by_variance[0]
        else:
            col = r[:, j].clone()
            r -= torch.outer(col, col) / col[j]
        chosen[j] = True
        order.append(j)
        residuals.append(float(torch.diagonal(r).clamp_min(0.0).sum()))
    return order, residuals


def residual_after(g: torch.Tensor, keep: list[int]) -> torch.Tensor:
    """The residual Gram R(S) (C x C) of the affine least-squares prediction of all channels from
    ``keep``: what is left of the centered Gram once the kept channels have explained what they can."""
    _check_aug(g)
    r = residual_gram(g)
    if not keep:
        return r
    s = torch.as_tensor(keep)
    rss = r[s][:, s]
    ridge = RIDGE * float(torch.diagonal(rss).max().clamp_min(1e-300))
    sol = torch.linalg.solve(rss + ridge * torch.eye(len(keep), dtype=r.dtype, device=r.device), r[s])
    return r - r[:, s] @ sol


def subset_residual(g: torch.Tensor, keep: list[int]) -> float:
    """Total residual sum of squares of the affine least-squares prediction of all channels from
    ``keep`` (the objective the selection minimizes; used by tests and reports)."""
    return float(torch.diagonal(residual_after(g, keep)).clamp_min(0.0).sum())


def independence_scores(g: torch.Tensor) -> torch.Tensor:
    """Per channel: residual variance when predicted (affinely) from all other channels, divided by
    its own variance. 1/(Sigma^-1)_ii is that residual, for the covariance Sigma."""
    r = residual_gram(g)
    d = torch.diagonal(r)
    ridge = RIDGE * float(d.max().clamp_min(1e-300))
    inv = torch.linalg.inv(r + ridge * torch.eye(r.shape[0], dtype=r.dtype, device=r.device))
    resid = 1.0 / torch.diagonal(inv)
    return (resid / d.clamp_min(ridge)).clamp(0.0, 1.0)


def explained_variance_curve(g: torch.Tensor, residuals: list[float] | None = None) -> list[float]:
    """Fraction of the map's variance explained by the greedy best k channels, for k = 0..C
    (``residuals``: greedy_select(g)'s, when the caller already has them)."""
    if residuals is None:
        _, residuals = greedy_select(g)
    total = residuals[0]
    if total <= 0:
        return [1.0] * len(residuals)
    return [max(0.0, 1.0 - r / total) for r in residuals]


#: Default fold regularisation: ridge = FOLD_RIDGE * (mean centered variance of the kept channels) * n,
#: i.e. relative to trace(centered G_SS) / |S|. Decoder channels are often nearly collinear; without it
#: the least-squares W of an ill-conditioned kept block has huge, cancelling coefficients that fit the
#: calibration clips and blow up on others. 1e-3 costs < 0.1% of the fitted variance on well-posed data.
FOLD_RIDGE = 1e-3


def fold_weights(g: torch.Tensor, keep: list[int], ridge: float = FOLD_RIDGE
                 ) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """Ridge-regularised least squares x_D ~= W x_S + b over the recorded positions.

    ``ridge`` is relative to the trace of the kept channels' centered Gram divided by their count (0
    gives plain least squares, up to the tiny RIDGE that keeps exactly collinear channels solvable);
    the intercept b is not penalised. Returns (dropped, W of shape (|D|, |S|), b of shape (|D|,)),
    all float64.
    """
    c = _check_aug(g)
    if not keep:
        raise LabError("cannot fold onto an empty channel set; keep at least one channel")
    ridge = float(ridge)
    if not ridge >= 0.0 or ridge != ridge or ridge == float("inf"):
        raise LabError(f"fold ridge must be a finite number >= 0 (relative to the kept channels' mean "
                       f"variance), got {ridge}")
    kept = set(keep)
    if len(kept) != len(keep) or min(keep) < 0 or max(keep) >= c:
        raise LabError(f"kept channel indices must be distinct and in [0, {c}), got {keep}")
    dropped = [i for i in range(c) if i not in kept]
    s = torch.as_tensor(list(keep) + [c])  # the constant channel rides along
    if not dropped:
        return (dropped, torch.zeros(0, len(keep), dtype=torch.float64, device=g.device),
                torch.zeros(0, dtype=torch.float64, device=g.device))
    d = torch.as_tensor(dropped)
    gss = g[s][:, s]
    k = len(keep)
    centered = residual_gram(gss)  # the constant is the last row/column, as _check_aug expects
    scale = float(torch.diagonal(centered).sum()) / k
    floor = RIDGE * float(torch.diagonal(gss)[:-1].max().clamp_min(1e-300))
    lam = max(ridge * scale, floor)
    # Penalise the channel coefficients only: the constant's entry (the count) gets no ridge.
    reg = torch.diag(torch.cat([torch.full((k,), lam, dtype=g.dtype, device=g.device),
                                torch.zeros(1, dtype=g.dtype, device=g.device)]))
    sol = torch.linalg.solve(gss + reg, g[s][:, d])  # (|S|+1, |D|)
    return dropped, sol[:-1].T.contiguous(), sol[-1].contiguous()


def weighted_greedy_select(grams: list[torch.Tensor], weights: list[torch.Tensor], k: int,
                           normalise: bool = True) -> list[int]:
    """Greedy forward selection minimising the *consumers' output* error of the fold, not the input
    residual: for consumer c with input Gram G_c and channel metric M_c (= sum over kernel taps of
    K_tap^T K_tap, C x C), the error of folding the dropped channels is ~ trace(M_c R_c(S)), with R_c(S)
    the residual Gram after the affine regression on the kept set S. With ``normalise``, each consumer's
    objective is divided by its value at S = {} so that every consumer counts equally (right when the
    metrics are in different units; wrong when they already share the output's units). Exact greedy via rank-one
    updates of R_c and M_c R_c (O(C^2) per step and consumer)."""
    if not grams or len(grams) != len(weights):
        raise LabError("weighted_greedy_select needs one channel metric per Gram (and at least one Gram)")
    c = _check_aug(grams[0])
    if not 0 <= k <= c:
        raise LabError(f"cannot select {k} of {c} channels")
    rs, mrs, floors = [], [], []
    for g, m in zip(grams, weights):
        if _check_aug(g) != c or tuple(m.shape) != (c, c):
            raise LabError(f"Gram {tuple(g.shape)} and metric {tuple(m.shape)} do not fit {c} channels")
        r = residual_gram(g)
        m = m.to(device=r.device, dtype=torch.float64)  # metrics from a CUDA teacher's weights meet CPU Grams
        total = float((m * r).sum())
        scale = 1.0 / total if normalise and total > 0 else 1.0
        rs.append(r.clone())
        mrs.append((m @ r) * scale)
        floors.append(GREEDY_FLOOR * max(float(torch.diagonal(r).max()), 1e-300))
    chosen = torch.zeros(c, dtype=torch.bool, device=rs[0].device)
    order: list[int] = []
    for _ in range(k):
        gain = torch.zeros(c, dtype=torch.float64, device=rs[0].device)
        for r, mr, floor in zip(rs, mrs, floors):
            d = torch.diagonal(r)
            g_c = (r * mr).sum(dim=0) / d.clamp_min(floor)
            g_c[d <= floor] = 0.0
            gain += g_c
        gain[chosen] = -1.0
        j = int(torch.argmax(gain))
        for i, (r, mr, floor) in enumerate(zip(rs, mrs, floors)):
            if r[j, j] > floor:
                u = r[:, j].clone()
                mu = mr[:, j].clone()
                rs[i] = r - torch.outer(u, u) / u[j]
                mrs[i] = mr - torch.outer(mu, u) / u[j]
        chosen[j] = True
        order.append(j)
    return order
