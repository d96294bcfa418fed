"""Search mode: candidates are measured per stage and the fastest one within the budget wins."""

import pytest
import torch

from lab.errors import ConfigError
from lab.ops.search import search_plan


def test_zero_budget_keeps_everything(tiny_wan):
    z = torch.randn(1, 16, 2, 4, 4)
    r = search_plan(tiny_wan, z, candidates=("keep", "conv2d"), stages=["up3"], max_rel_err=0.0, repeats=1)
    assert r["plan"]["up3"] == "keep"
    conv2d = [t for t in r["trials"] if t["operator"] == "conv2d"][0]
    assert conv2d["rel_err"] > 0 and not conv2d["accepted"]
    assert r["final"]["rel_err"] == 0.0


def test_loose_budget_takes_the_fastest_measured(tiny_wan):
    z = torch.randn(1, 16, 2, 4, 4)
    r = search_plan(tiny_wan, z, candidates=("keep", "conv2d", "dwsep3d"), stages=["up2", "up3"],
                    max_rel_err=100.0, repeats=1)
    for stage in ("up2", "up3"):
        rows = [t for t in r["trials"] if t["stage"] == stage]
        assert len(rows) == 3 and all(t["accepted"] for t in rows)
        assert r["plan"][stage] == min(rows, key=lambda t: t["stage_seconds"])["operator"]


def test_search_validates_inputs(tiny_wan):
    z = torch.randn(1, 16, 1, 2, 2)
    with pytest.raises(ConfigError, match="unknown operator"):
        search_plan(tiny_wan, z, candidates=("keep", "nope"))
    with pytest.raises(ConfigError, match="does not have"):
        search_plan(tiny_wan, z, stages=["up9"])
    with pytest.raises(ConfigError, match="budget"):
        search_plan(tiny_wan, z, max_rel_err=None)
