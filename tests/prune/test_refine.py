"""Output sensitivity (Jacobian Grams from random probes), the independence-jacobian criterion and the
output-checked refinement of a selection, on the tiny config of the real Wan class."""

import pytest
import torch

from lab.analysis import analyze
from lab.analysis.linalg import residual_gram, weighted_greedy_select
from lab.analysis.sensitivity import output_sensitivity
from lab.errors import ConfigError, LabError
from lab.prune import prune
from lab.prune.criteria import CriterionContext, select
from lab.prune.refine import best_swaps, proxy_error, refine_selection


@pytest.fixture(scope="module")
def tiny_latents(tiny_wan):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(1, 16, 3, 6, 6, generator=g)]


@pytest.fixture(scope="module")
def tiny_analysis(tiny_wan, tiny_latents):
    return analyze(tiny_wan, tiny_latents)


def test_sensitivity_of_the_last_conv_is_its_tap_metric(tiny_wan, tiny_latents, tiny_analysis):
    # conv_out is linear and nothing after it is nonlinear (decode_with_grad does not clamp), so away from
    # the borders E[g g^T] = sum over taps of K_tap^T K_tap: the probes must recover it.
    group = next(g for g in tiny_analysis.groups if any(c.path == "decoder.conv_out" for c in g.consumers))
    flags = [p.requires_grad for p in tiny_wan.vae.parameters()]
    metrics = output_sensitivity(tiny_wan, tiny_latents, [group], probes=6)
    assert [p.requires_grad for p in tiny_wan.vae.parameters()] == flags  # the teacher is left as it was
    w = tiny_wan.vae.get_submodule("decoder.conv_out").weight.detach().to(torch.float64)
    taps = w.reshape(w.shape[0], w.shape[1], -1).permute(2, 0, 1)
    expected = torch.einsum("toi,toj->ij", taps, taps)
    got = metrics["decoder.conv_out"]
    # Borders see fewer taps (zero/causal padding), and the probes are finite: 20% in Frobenius norm.
    assert torch.linalg.norm(got - expected) / torch.linalg.norm(expected) < 0.2


def test_sensitivity_needs_probes_and_latents(tiny_wan, tiny_analysis):
    with pytest.raises(LabError, match="probes"):
        output_sensitivity(tiny_wan, [torch.zeros(1, 16, 1, 4, 4)], tiny_analysis.groups, probes=0)
    with pytest.raises(LabError, match="at least one"):
        output_sensitivity(tiny_wan, [], tiny_analysis.groups)


def test_unnormalised_weighted_greedy_picks_the_best_single_channel():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 500, generator=g, dtype=torch.float64)
    x[3] = x[0] + 0.1 * x[1]
    aug = torch.cat([x, torch.ones(1, 500, dtype=torch.float64)])
    gram = aug @ aug.T
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    metric = a @ a.T
    first = weighted_greedy_select([gram], [metric], 1, normalise=False)[0]
    r = residual_gram(gram)

    def err(j):
        s = [j]
        res = r - r[:, s] @ torch.linalg.solve(r[s][:, s], r[s])
        return float((metric * res).sum())
    assert first == min(range(6), key=err)


def test_jacobian_criterion_needs_sensitivity_then_selects(tiny_wan, tiny_latents):
    a = analyze(tiny_wan, tiny_latents)
    group = next(g for g in a.groups if g.name.endswith("stream") and g.width >= 8)
    with pytest.raises(ConfigError, match="add_sensitivity"):
        select("independence-jacobian", CriterionContext(group, 2, tiny_wan.vae, a))
    a.add_sensitivity(tiny_wan, tiny_latents, probes=2)
    kept = select("independence-jacobian", CriterionContext(group, 2, tiny_wan.vae, a))
    assert len(kept) == 2
    # The greedy choice has a lower first-order output error than the mean over swaps away from it.
    swaps = best_swaps(a, group, kept, 100)
    assert proxy_error(a, group, kept) <= min(proxy_error(a, group, s) for s in swaps) + 1e-9


def test_refine_selection_only_accepts_improvements(tiny_analysis):
    group = next(g for g in tiny_analysis.groups if g.width >= 8)
    target = set(range(group.width - 3, group.width))
    calls = []

    def score(sel):  # a stand-in for the student's error: distance to a known best selection
        calls.append(sel)
        return float(len(target - set(sel[group.name])))

    kept, report = refine_selection({group.name: [0, 1, 2]}, [group], tiny_analysis, score, passes=3, swaps=200,
                                    alternatives={group.name: [[0, 1, group.width - 1]]})
    assert set(kept[group.name]) == target
    assert report["initial_error"] == 3.0 and report["final_error"] == 0.0
    gains = [c["gain"] for c in report["changes"]]
    assert gains and all(gn > 0 for gn in gains)
    assert report["evaluations"] == len(calls)


def test_refine_progress_knows_its_total(tiny_analysis, monkeypatch):
    import lab.prune.refine as refine
    seen = []  # (steps done, total) at each update

    class Recording(refine.Progress):
        def update(self, n=1, note=None):
            super().update(n, note)
            seen.append((self.n, self.total))
    monkeypatch.setattr(refine, "Progress", Recording)
    groups = [g for g in tiny_analysis.groups if g.width >= 4][:2]
    kept = {g.name: [0, 1] for g in groups}
    _, report = refine_selection(kept, groups, tiny_analysis, lambda sel: 1.0, passes=2, swaps=3)
    # nothing improves: one pass, each group's 3 swaps, and the bar knew it would be 6 from the first student
    assert report["evaluations"] - 1 == len(seen) == 6
    assert all(total == 6 for _, total in seen) and seen[-1] == (6, 6)


def test_prune_with_refine_reports_the_error_of_the_student_it_returns(tiny_wan, tiny_latents):
    student, info = prune(tiny_wan, {"up3": 0.25}, "independence", latents=tiny_latents, refine=1, refine_swaps=2,
                          sensitivity_probes=1)
    rep = info["refine"]
    assert rep["final_error"] <= rep["initial_error"]
    assert rep["evaluations"] >= 2
    ref = tiny_wan.decode(tiny_latents[0])
    err = float(((student.decode(tiny_latents[0]) - ref) ** 2).mean())
    assert err == pytest.approx(rep["final_error"], rel=1e-4, abs=1e-7)
    for change in rep["changes"]:  # the saved config records the refined channels
        if change is rep["changes"][-1] or all(c["group"] != change["group"] for c in rep["changes"][rep["changes"].index(change) + 1:]):
            assert list(student.vae.config.kept[change["group"]]) == change["to"]
