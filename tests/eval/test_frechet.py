"""Frechet distance against its closed form on Gaussians."""

import numpy as np
import pytest

from lab.eval.frechet import GaussianStats, frechet_distance, frechet_of_features


def test_diagonal_gaussians_closed_form():
    # For commuting (diagonal) covariances: |mu1-mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 1 + 0 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 1) ** 2
    for method in ("sqrtm", "eigh"):
        assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method=method) == pytest.approx(expected)


def test_general_covariances_methods_agree_and_samples_converge():
    rng = np.random.default_rng(0)
    l1, l2 = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = l1 @ l1.T + 0.1 * np.eye(6), l2 @ l2.T + 0.1 * np.eye(6)
    mu = rng.normal(size=6)
    exact = frechet_distance(np.zeros(6), s1, mu, s2, method="sqrtm")
    assert exact == pytest.approx(frechet_distance(np.zeros(6), s1, mu, s2, method="eigh"), rel=1e-8)
    x = rng.multivariate_normal(np.zeros(6), s1, size=40000)
    y = rng.multivariate_normal(mu, s2, size=40000)
    assert frechet_of_features(x, y) == pytest.approx(exact, rel=0.05)
    assert frechet_of_features(x, x) == pytest.approx(0.0, abs=1e-6)


def test_stats_streaming_and_covariance():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(50, 5)) * 3 + 7
    s = GaussianStats()
    for i in range(0, 50, 7):
        s.update(f[i:i + 7])
    assert np.allclose(s.mean, f.mean(0))
    assert np.allclose(s.cov, np.cov(f, rowvar=False))  # mean outer product subtracted, n - 1


def test_singular_covariances_stay_finite():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(5, 40)), rng.normal(size=(5, 40)) + 0.5  # 5 samples in 40 dims
    for method in ("sqrtm", "eigh"):
        sa, sb = GaussianStats().update(a), GaussianStats().update(b)
        d = frechet_distance(sa.mean, sa.cov, sb.mean, sb.cov, method=method)
        assert np.isfinite(d) and d > 0
    assert abs(frechet_of_features(a, a)) < 1e-9


def test_sample_space_route_equals_covariance_route():
    # 5 and 7 samples in 40 dims: the sample-space (nuclear norm) route is used; it must equal the
    # d x d definition (sqrtm), and streaming must not change it.
    from lab.eval.frechet import frechet_from_stats
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(5, 40)), rng.normal(size=(7, 40)) * 2 + 0.3
    sa, sb = GaussianStats(), GaussianStats().update(b)
    sa.update(a[:2]).update(a[2:])
    assert sa.rows is not None
    exact = frechet_distance(sa.mean, sa.cov, sb.mean, sb.cov, method="sqrtm")
    assert frechet_from_stats(sa, sb) == pytest.approx(exact, rel=1e-6)
    big = GaussianStats().update(rng.normal(size=(50, 40)))
    assert big.rows is None  # more samples than dimensions: only the sums are kept


def test_too_few_samples():
    with pytest.raises(ValueError, match="at least 2 samples"):
        GaussianStats().update(np.zeros((1, 3))).cov
