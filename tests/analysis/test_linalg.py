"""Selection and fold algebra against brute force on small synthetic data."""

import itertools

import pytest
import torch

from lab.analysis import ChannelStats, explained_variance_curve, fold_weights, greedy_select, independence_scores
from lab.analysis import stats as stats_mod
from lab.analysis.linalg import subset_residual
from lab.errors import LabError
from lab.prune.transfer import fold_into


def _gram(x: torch.Tensor) -> torch.Tensor:
    st = ChannelStats(x.shape[0])
    st.update(x[None], channel_dim=1)
    return st.augmented()


def _low_rank(c=8, k=3, n=4000, seed=0):
    """k basis channels hidden among c; the rest are affine combinations of them."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(k, n, generator=g, dtype=torch.float64)
    mix = torch.randn(c - k, k, generator=g, dtype=torch.float64)
    others = mix @ basis + torch.randn(c - k, 1, generator=g, dtype=torch.float64)
    perm = torch.randperm(c, generator=g)
    x = torch.cat([basis, others])[perm]
    true_basis = sorted(int(i) for i in torch.nonzero(perm < k).flatten())
    return x, true_basis


def test_greedy_finds_an_exact_basis_of_a_rank_k_map():
    x, _ = _low_rank()
    g = _gram(x)
    order, residuals = greedy_select(g, 3)
    total = residuals[0]
    assert residuals[-1] < 1e-8 * total
    assert subset_residual(g, order) < 1e-6 * total  # solves carry a 1e-12 ridge
    # Brute force: the chosen set is among the optimal (zero-residual) subsets, and 2 channels never suffice.
    best3 = min(subset_residual(g, list(s)) for s in itertools.combinations(range(8), 3))
    best2 = min(subset_residual(g, list(s)) for s in itertools.combinations(range(8), 2))
    assert best3 < 1e-6 * total and best2 > 1e-3 * total
    assert residuals[2] >= best2 * (1 - 1e-9)


def test_greedy_matches_brute_force_for_one_channel_and_its_own_residuals():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 6, dtype=torch.float64, generator=g) @ torch.randn(6, 3000, dtype=torch.float64, generator=g)
    gram = _gram(x)
    order, residuals = greedy_select(gram, 4)
    brute = min(range(6), key=lambda i: subset_residual(gram, [i]))
    assert order[0] == brute
    for k in range(1, 5):  # the incremental residuals equal a direct least-squares solve
        assert residuals[k] == pytest.approx(subset_residual(gram, order[:k]), rel=1e-6)
    assert all(a >= b - 1e-9 for a, b in zip(residuals, residuals[1:]))


def test_independence_scores_and_curve():
    g = torch.Generator().manual_seed(2)
    a, b, noise = (torch.randn(5000, dtype=torch.float64, generator=g) for _ in range(3))
    x = torch.stack([a, b, a - 2 * b + 3.0, noise])
    s = independence_scores(_gram(x))
    assert s[2] < 1e-6 and s[0] < 1e-6 and s[1] < 1e-6  # each of a, b, a-2b is a combination of the others
    assert s[3] > 0.99
    curve = explained_variance_curve(_gram(x))
    assert curve[0] == 0.0 and curve[3] == pytest.approx(1.0) and curve[2] < 0.999
    assert all(u <= v + 1e-12 for u, v in zip(curve, curve[1:]))


def test_streaming_stats_equal_direct_computation(monkeypatch):
    monkeypatch.setattr(stats_mod, "CHUNK_POSITIONS", 7)  # force many chunks
    x = torch.randn(2, 5, 3, 4, 6)  # N C T H W
    st = ChannelStats(5)
    st.update(x[:, :, :2])
    st.update(x[:, :, 2:])
    flat = x.movedim(1, 0).reshape(5, -1).double()
    assert st.count == flat.shape[1]
    assert torch.allclose(st.gram, flat @ flat.T)
    assert torch.allclose(st.sum, flat.sum(1))
    assert st.gram.dtype == torch.float64
    assert torch.allclose(st.covariance(), torch.cov(flat, correction=0))
    with pytest.raises(LabError, match="channels"):
        st.update(torch.randn(1, 4, 1, 2, 2))


def test_accumulators_live_on_the_input_device_in_float64():
    # 'meta' stands in for CUDA: adding its tensors into host accumulators raises, as CUDA ones do.
    st = ChannelStats(4)
    st.update(torch.empty(2, 4, 3, 5, device="meta"))
    sq = ChannelStats(4, diag_only=True)
    sq.update(torch.empty(2, 4, 3, 5, device="meta", dtype=torch.bfloat16))
    for t in (st.sum, st.sumsq, st.gram, sq.sum, sq.sumsq):
        assert t.device.type == "meta" and t.dtype == torch.float64
    assert st.count == sq.count == 30 and st.device.type == "meta"
    assert stats_mod.chunk_dtype(torch.empty(1, device="meta")) == torch.float32  # off the CPU: fp32 chunks


def test_float32_chunk_products_match_float64_accumulation(monkeypatch):
    # What accelerators do (float64 matmuls are slow there): each chunk in float32, summed in float64.
    monkeypatch.setattr(stats_mod, "CHUNK_POSITIONS", 50)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 6, 3, 8, 8, generator=g) * torch.linspace(0.1, 3.0, 6).view(1, 6, 1, 1, 1) + 1.5
    exact = ChannelStats(6)
    exact.update(x)
    assert stats_mod.chunk_dtype(x) == torch.float64  # the CPU keeps float64 products
    monkeypatch.setattr(stats_mod, "chunk_dtype", lambda t: torch.float32)
    fast = ChannelStats(6)
    fast.update(x[:, :, :1])
    fast.update(x[:, :, 1:])
    assert fast.gram.dtype == torch.float64 and fast.count == exact.count
    assert torch.allclose(fast.augmented(), exact.augmented(), rtol=1e-5)
    assert torch.allclose(fast.covariance(), exact.covariance(), rtol=1e-4, atol=1e-6)
    assert torch.allclose(independence_scores(fast.augmented()), independence_scores(exact.augmented()), atol=1e-4)


def test_fold_is_exact_for_a_linear_consumer_on_low_rank_inputs():
    g = torch.Generator().manual_seed(3)
    basis = torch.randn(1, 3, 4, 6, 6, generator=g)
    mix = torch.randn(5, 3, generator=g)
    x = torch.cat([basis, torch.einsum("dk,nkthw->ndthw", mix, basis)], dim=1)  # 8 channels, rank 3
    conv = torch.nn.Conv3d(8, 4, 3, padding=1)
    gram = _gram(x[0])
    keep = greedy_select(gram, 3)[0]
    w, b = fold_into(conv.weight, conv.bias, gram, sorted(keep), ridge=0.0)  # exact without regularisation
    small = torch.nn.Conv3d(3, 4, 3, padding=1)
    with torch.no_grad():
        small.weight.copy_(w)
        small.bias.copy_(b)
        assert torch.allclose(small(x[:, sorted(keep)]), conv(x), atol=1e-4)
    dropped, wls, bias = fold_weights(gram, sorted(keep), ridge=0.0)
    assert len(dropped) == 5 and wls.shape == (5, 3) and bias.abs().max() < 1e-5
    # The default ridge shrinks an exact fold only slightly (here, 144 positions: a few percent).
    _, wls_r, _ = fold_weights(gram, sorted(keep))
    assert 0 < (wls_r - wls).abs().max() < 5e-2 * wls.abs().max()


def test_fold_ridge_keeps_a_near_singular_fold_finite_and_small():
    # Two kept channels that are the same up to 1e-9 noise, and a dropped one that depends on their
    # difference: the (almost) plain solve answers with huge cancelling coefficients, which amplify
    # any other clip's noise; the ridge gives the stable share of the common part.
    g = torch.Generator().manual_seed(5)
    a = torch.randn(1, 2000, generator=g, dtype=torch.float64)
    twin = a + 1e-9 * torch.randn(1, 2000, generator=g, dtype=torch.float64)
    other = torch.randn(1, 2000, generator=g, dtype=torch.float64)
    x = torch.cat([a, twin, 0.5 * a + other + (twin - a) * 1e9], dim=0)
    gram = _gram(x)
    _, plain, _ = fold_weights(gram, [0, 1], ridge=0.0)
    _, reg, _ = fold_weights(gram, [0, 1])
    assert torch.isfinite(reg).all()
    assert plain.abs().max() > 100.0         # the unregularised fold blows up ...
    assert reg.abs().max() < 1.0             # ... the default ridge keeps it at the data's scale
    assert torch.allclose(reg[0, 0], reg[0, 1], rtol=1e-3)
    with pytest.raises(LabError, match="ridge"):
        fold_weights(gram, [0], ridge=-1.0)


def test_fold_and_select_reject_bad_requests():
    gram = _gram(torch.randn(4, 100, dtype=torch.float64))
    with pytest.raises(LabError):
        fold_weights(gram, [])
    with pytest.raises(LabError):
        fold_weights(gram, [0, 0])
    with pytest.raises(LabError):
        greedy_select(gram, 5)


def test_output_weighted_greedy_finds_a_basis_and_follows_the_consumer():
    from lab.analysis.linalg import weighted_greedy_select
    x, _ = _low_rank()
    g = _gram(x)
    c = g.shape[0] - 1
    order = weighted_greedy_select([g], [torch.eye(c, dtype=torch.float64)], 3)
    assert len(set(order)) == 3 and subset_residual(g, sorted(order)) < 1e-6 * float(torch.diagonal(g).sum())
    # Two independent channels; a consumer that reads only channel 1 makes it the one worth keeping.
    x = torch.randn(2, 500, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x[0] *= 10.0  # the unweighted greedy would keep the high-variance channel 0
    g2 = _gram(x)
    assert greedy_select(g2, 1)[0] == [0]
    assert weighted_greedy_select([g2], [torch.diag(torch.tensor([0.0, 1.0], dtype=torch.float64))], 1) == [1]
