"""--json output is strict JSON: a PSNR of inf (identical videos) is the string "inf", never the
non-standard token Infinity that JSON parsers other than Python's reject."""

import json
import math

import numpy as np
import pytest
import torch

from lab.cli import main
from lab.jsonio import dumps, json_safe


def _strict(text: str):
    def reject(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=reject)


def test_non_finite_numbers_become_strings():
    r = {"psnr": float("inf"), "low": -math.inf, "nan": float("nan"), "ok": 1.5, "n": 3, "none": None,
         "np": [np.float32("inf"), np.float64(2.0), np.int64(4)], "t": torch.tensor([1.0, float("inf")]),
         "nested": ({"x": float("inf")},)}
    parsed = _strict(dumps(r))
    assert parsed == {"psnr": "inf", "low": "-inf", "nan": "nan", "ok": 1.5, "n": 3, "none": None,
                      "np": ["inf", 2.0, 4], "t": [1.0, "inf"], "nested": [{"x": "inf"}]}
    assert float(parsed["psnr"]) == math.inf  # the documented way back to a number
    assert json_safe(2.0) == 2.0


def test_eval_of_identical_decodes_prints_valid_json(capsys, tmp_path):
    # A saved copy of the tiny teacher decodes exactly like it when both run eagerly (the copy by @eager: the
    # reference teacher always does): PSNR vs the teacher is inf.
    from lab.models import load_decoder
    torch.manual_seed(0)
    folder = load_decoder("wan2.1-tiny").save(tmp_path / "copy")
    rc = main(["eval", "--decoder", f"{folder}@eager", "--teacher", "wan2.1-tiny", "--video", "bbb-128",
               "--frames", "5", "--size", "32x32", "--metrics", "psnr,ssim", "--json"])
    r = _strict(capsys.readouterr().out)
    assert rc == 0
    assert r["vs_teacher"]["psnr"] == "inf"
    assert r["vs_teacher"]["ssim"] == pytest.approx(1.0)
    assert r["retention"] == pytest.approx(1.0) and r["psnr"] == r["teacher_vs_clip"]["psnr"]
