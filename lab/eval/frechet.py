"""Frechet distance between two sets of embeddings (the distance behind FID and video FID).

FD = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), with S the covariance of each set: the mean
outer product is subtracted (sample covariance, divisor n - 1, as pytorch-fid's ``np.cov``).
:class:`GaussianStats` accumulates sums batch by batch, so streaming equals the one-shot call.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import torch


class GaussianStats:
    """Running mean and covariance of feature vectors (float64 sums). While there are no more
    samples than dimensions the rows are kept as well: the covariance then has rank < d and the
    Frechet distance is computed exactly in sample space (see :func:`frechet_from_stats`)."""

    def __init__(self):
        self.n = 0
        self._sum: np.ndarray | None = None
        self._outer: np.ndarray | None = None
        self._rows: list[np.ndarray] | None = []

    def update(self, feats) -> "GaussianStats":
        f = feats.detach().double().cpu().numpy() if torch.is_tensor(feats) else np.asarray(feats, dtype=np.float64)
        if f.ndim != 2:
            raise ValueError(f"features must be (n, d), got shape {f.shape}")
        if self._sum is None:
            self._sum, self._outer = np.zeros(f.shape[1]), np.zeros((f.shape[1], f.shape[1]))
        elif f.shape[1] != self._sum.shape[0]:
            raise ValueError(f"features of dimension {f.shape[1]} fed to stats of dimension {self._sum.shape[0]}")
        self.n += f.shape[0]
        self._sum += f.sum(0)
        self._outer += f.T @ f
        if self._rows is not None:
            self._rows.append(f.copy())
            if self.n > f.shape[1]:
                self._rows = None  # full rank possible: the d x d route costs no more
        return self

    @property
    def rows(self) -> np.ndarray | None:
        return np.concatenate(self._rows) if self._rows else None

    @property
    def mean(self) -> np.ndarray:
        if self.n < 2:
            raise ValueError(f"a covariance needs at least 2 samples, got {self.n}")
        return self._sum / self.n

    @property
    def cov(self) -> np.ndarray:
        mu = self.mean
        return (self._outer - self.n * np.outer(mu, mu)) / (self.n - 1)


def _trace_sqrt_product_sqrtm(sigma1, sigma2, eps: float) -> float:
    """Tr((S1 S2)^(1/2)) with scipy.linalg.sqrtm, pytorch-fid's recipe."""
    with warnings.catch_warnings():
        # scipy warns on singular products; the finiteness check below handles them.
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            # Near-singular product (fewer samples than dimensions): regularise both, as pytorch-fid does.
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        # Round-off leaves tiny imaginary parts; a large one means the statistics are broken.
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"frechet: sqrtm has a large imaginary component "
                             f"({np.max(np.abs(covmean.imag)):.3g}); the covariances are not valid")
        covmean = covmean.real
    return float(np.trace(covmean))


def _trace_sqrt_product_eigh(sigma1, sigma2) -> float:
    """The same trace through one symmetric eigenproblem: with S1 = L L^T (Cholesky), S1 S2 is
    similar to L^T S2 L, which is symmetric PSD, so Tr((S1 S2)^(1/2)) = sum sqrt(eig(L^T S2 L)).
    Singular S1 (fewer samples than dimensions) gets a jitter of 1e-9 x its mean variance, far below
    any reported digit. At d=2048 this takes seconds where sqrtm takes about a minute (shared CPU)."""
    jitter = 1e-9 * max(float(np.trace(sigma1)) / sigma1.shape[0], np.finfo(np.float64).tiny)
    for _ in range(6):
        try:
            chol = np.linalg.cholesky(sigma1 + jitter * np.eye(sigma1.shape[0]))
            break
        except np.linalg.LinAlgError:
            jitter *= 10  # round-off made a zero eigenvalue slightly negative
    else:
        raise ValueError("frechet: the first covariance is not positive semi-definite")
    ev = np.linalg.eigvalsh(chol.T @ sigma2 @ chol)
    return float(np.sqrt(np.clip(ev, 0, None)).sum())


#: above this feature dimension the eigh route is used (InceptionV3 pool3 is 2048-d)
SQRTM_MAX_DIM = 512


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6, method: str = "auto") -> float:
    """Frechet distance of N(mu1, sigma1) and N(mu2, sigma2). ``method``: "sqrtm" (scipy.linalg.sqrtm),
    "eigh" (symmetric eigendecomposition, same value) or "auto" (sqrtm up to SQRTM_MAX_DIM dims)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"frechet: mismatched statistics {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}")
    if method == "auto":
        method = "sqrtm" if mu1.size <= SQRTM_MAX_DIM else "eigh"
    if method == "sqrtm":
        tr_covmean = _trace_sqrt_product_sqrtm(sigma1, sigma2, eps)
    elif method == "eigh":
        tr_covmean = _trace_sqrt_product_eigh(sigma1, sigma2)
    else:
        raise ValueError(f"frechet: unknown method '{method}' (sqrtm, eigh or auto)")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def frechet_from_stats(sa: GaussianStats, sb: GaussianStats) -> float:
    """Frechet distance of two accumulated sets. With fewer samples than dimensions (one clip's
    frames in 2048-d Inception space) it is computed exactly from the centred samples X, Y:
    S1 = X^T X / (n-1), S2 = Y^T Y / (m-1), and the nonzero eigenvalues of S1 S2 are the squared
    singular values of X Y^T / sqrt((n-1)(m-1)), so Tr((S1 S2)^(1/2)) is that matrix's nuclear norm.
    No d x d matrix is formed; otherwise :func:`frechet_distance` is used."""
    if min(sa.n, sb.n) < 2:
        raise ValueError(f"a Frechet distance needs at least 2 samples per set, got {sa.n} and {sb.n}")
    ra, rb = sa.rows, sb.rows
    if ra is None or rb is None:
        return frechet_distance(sa.mean, sa.cov, sb.mean, sb.cov)
    xa, xb = ra - sa.mean, rb - sb.mean
    diff = sa.mean - sb.mean
    tr_a, tr_b = (xa ** 2).sum() / (sa.n - 1), (xb ** 2).sum() / (sb.n - 1)
    nuclear = np.linalg.svd(xa @ xb.T / np.sqrt((sa.n - 1) * (sb.n - 1)), compute_uv=False).sum()
    return float(diff @ diff + tr_a + tr_b - 2 * nuclear)


def frechet_of_features(a, b) -> float:
    """Frechet distance between two feature sets (n, d) and (m, d)."""
    return frechet_from_stats(GaussianStats().update(a), GaussianStats().update(b))
