"""The full-size Wan 2.1 architecture (random weights) at a small video size: the streaming analysis
runs on it, and the Flash-VAED plan (pruned widths + swapped operators) gives the authors' ~5.9M
parameter student, which streams causally and reloads. (scripts/analyze_full_wan.py runs the same
analysis at 480x832.)"""

import importlib.util

import pytest
import torch

from lab.analysis import analyze
from lab.models import load_decoder
from lab.prune import prune

Z = torch.randn(1, 16, 2, 2, 2, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def full_wan():
    return load_decoder("wan2.1", weights="random")


@pytest.fixture(scope="module")
def full_analysis(full_wan):
    return analyze(full_wan, Z)


def test_full_size_analysis_covers_every_group(full_analysis):
    s = {g["group"]: g for g in full_analysis.summary()["groups"]}
    assert s["up1.stream"]["width"] == 384 and s["up2.stream"]["width"] == 192 and s["up3.stream"]["width"] == 96
    # float64 Grams, at most 385x385 each: the state is small whatever the video size.
    assert all(st.gram is None or st.gram.dtype == torch.float64 for st in full_analysis.stats.values())
    assert max(st.gram.shape[0] for st in full_analysis.stats.values() if st.gram is not None) == 384


@pytest.mark.skipif(importlib.util.find_spec("lab.ops.swap") is None, reason="lab.ops.swap (issue 5) is absent")
def test_flash_vaed_student_of_full_wan(full_wan, full_analysis, tmp_path):
    s, info = prune(full_wan, "flash-vaed", "independence", analysis=full_analysis, operators="flash-vaed")
    assert info["widths"]["up2.stream"] == 24 and info["widths"]["up3.stream"] == 12
    assert 5.7e6 < s.decoder_params() < 6.1e6  # Flash-VAED's released student: 5.9M
    whole = s.decode(Z)
    assert whole.shape == (1, 3, 5, 16, 16)
    assert torch.equal(torch.cat(list(s.decode_stream(Z)), dim=2), whole)
    z2 = Z.clone()
    z2[:, :, 1] += 1.0
    assert torch.equal(s.decode(z2)[:, :, :1], whole[:, :, :1])
    r = load_decoder(str(s.save(tmp_path / "fv")))
    assert r.vae.config.operators == info["operators"] and torch.equal(r.decode(Z), whole)
