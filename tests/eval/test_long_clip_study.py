"""scripts/long_clip_study.py: the stretches cover whole latent frames of Wan (t = 4) and LTX (t = 8) clips, each
stretch's PSNR is that of its frames alone, and the committed study's page shows its JSON."""

import json
from pathlib import Path

import pytest
import torch

from lab.eval.metrics import psnr, psnr_by_latent_frame

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "docs" / "results" / "long-clips.json"


@pytest.fixture(scope="module")
def mod(repo_script):
    return repo_script("scripts/long_clip_study.py")


def test_stretches_are_whole_latent_frames_of_wan_and_ltx(mod):
    assert mod.stretches(49) == [(1, 9), (10, 17), (18, 49)] and mod.stretches(9) == [(1, 9)]
    for t in (4, 8):  # every stretch starts on a latent frame boundary: frame 1, then 1 + t*k + 1 (1-based)
        assert all((a - 2) % t == 0 for a, _ in mod.stretches(49)[1:])


def test_a_stretch_scores_its_own_frames_only(mod):
    torch.manual_seed(0)
    y = torch.rand(1, 3, 49, 8, 8) * 2 - 1
    x = y.clone()
    x[:, :, 17:] += 0.2  # a decode that drifts from frame 18 on
    s = mod.scores(x, y)
    assert s["1-9"] == s["10-17"] == float("inf") and s["18-49"] == pytest.approx(round(10 * torch.log10(
        torch.tensor(4 / 0.04)).item(), 3))
    assert s["all"] == round(psnr(x, y), 3)
    assert psnr_by_latent_frame(x, y, 4)[5:] == [pytest.approx(s["18-49"], abs=1e-3)] * 8  # the same, latent by latent


def test_the_committed_study_page_shows_its_json(mod):
    if not RESULTS.is_file():
        pytest.skip("docs/results/long-clips.json is not committed")
    page = RESULTS.with_suffix(".md").read_text()
    for study in json.loads(RESULTS.read_text())["studies"]:
        assert mod.table(study) in page
        assert all(r["frames"] == study["frames"] for r in study["rows"])
