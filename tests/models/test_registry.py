import json
import subprocess
import sys

import pytest

from lab.cli import main
from lab.errors import UnknownModelError
from lab.models import get_entry, load_decoder


def test_models_json_lists_teachers_with_paper_param_counts(capsys):
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for name, params, ch, comp in [("wan2.1", 73.3e6, 16, [4, 8, 8]), ("ltx-video", 238.8e6, 128, [8, 32, 32])]:
        r = rows[name]
        assert r["family"] == "teacher"
        assert r["latent_channels"] == ch and r["compression"] == comp
        assert abs(r["decoder_params"] - params) / params < 0.01, (name, r["decoder_params"])
        assert "hub" in r["weights"]


def test_cli_is_a_module_with_help():
    out = subprocess.run([sys.executable, "-m", "lab", "models", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--json" in out.stdout


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError, match=r"Did you mean wan2\.[12]"):
        get_entry("wan2.9")


def test_unknown_model_cli_error_is_one_line(capsys):
    assert main(["decode", "--decoder", "nope", "--latents", "x.pth", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["type"] == "UnknownModelError" and "python -m lab models" in out["error"]


def test_tiny_models_load_with_matching_counts():
    for name in ["wan2.1-tiny", "ltx-video-tiny"]:
        dec = load_decoder(name)
        assert dec.decoder_params() == get_entry(name).decoder_params()
