import json

import pytest
import torch

from lab.errors import CheckpointError, UnknownModelError, WeightsNotFoundError
from lab.models import load_decoder


def test_save_and_reload_is_identical(tiny_wan, tmp_path):
    tiny_wan.save(tmp_path / "m")
    again = load_decoder(str(tmp_path / "m"))
    z = torch.randn(1, 16, 2, 3, 3)
    assert torch.equal(again.decode(z), tiny_wan.decode(z))
    assert json.loads((tmp_path / "m" / "lab_decoder.json").read_text())["adapter"] == "wan"


def test_ltx_save_and_reload(tiny_ltx, tmp_path):
    tiny_ltx.save(tmp_path / "l")
    again = load_decoder(str(tmp_path / "l"))
    z = torch.randn(1, 128, 2, 2, 2)
    assert torch.equal(again.decode(z), tiny_ltx.decode(z))


def test_plain_diffusers_folder_loads_as_teacher(tiny_wan, tmp_path):
    tiny_wan.vae.save_pretrained(tmp_path / "vae")
    dec = load_decoder(str(tmp_path))  # a pipeline-style folder with vae/
    assert dec.geometry.channels == 16 and dec.family == "teacher"


def test_hub_offline_says_what_is_missing():
    with pytest.raises(WeightsNotFoundError, match="--weights /path/to/vae"):
        load_decoder("wan2.1")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        load_decoder("wan2.1-tiny", weights=str(tmp_path / "nope.safetensors"))


def test_folder_without_config(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="no config.json"):
        load_decoder("wan2.1-tiny", weights=str(tmp_path))


def test_corrupted_checkpoint(tmp_path):
    bad = tmp_path / "vae.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="corrupted"):
        load_decoder("wan2.1-tiny", weights=str(bad))


def test_mismatched_checkpoint(tiny_ltx, tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "ltx.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_ltx.vae.state_dict().items()}, str(path))
    with pytest.raises(CheckpointError):
        load_decoder("wan2.1-tiny", weights=str(path))


def test_single_file_round_trip(tiny_wan, tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "wan_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_wan.vae.state_dict().items()}, str(path))
    dec = load_decoder("wan2.1-tiny", weights=str(path))
    z = torch.randn(1, 16, 2, 2, 2)
    assert torch.equal(dec.decode(z), tiny_wan.decode(z))


def test_saved_folder_with_corrupt_meta(tiny_wan, tmp_path):
    tiny_wan.save(tmp_path / "m")
    (tmp_path / "m" / "lab_decoder.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupted"):
        load_decoder(str(tmp_path / "m"))


def test_random_folder_is_not_a_model(tmp_path):
    with pytest.raises(UnknownModelError, match="not a decoder folder"):
        load_decoder(str(tmp_path))
