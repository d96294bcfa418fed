"""Damaged decoder folders give one clear CheckpointError naming the file and the fix."""

import pytest

from lab.errors import CheckpointError
from lab.models import load_decoder


@pytest.mark.parametrize("text", ["[1, 2]", '"wan"', "{}", '{"adapter": 3}', "{not json"])
def test_bad_lab_decoder_json(tmp_path, text):
    (tmp_path / "lab_decoder.json").write_text(text)
    with pytest.raises(CheckpointError, match="lab_decoder.json is corrupted.*re-save the decoder"):
        load_decoder(str(tmp_path))


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_bad_config_in_plain_diffusers_folder(tmp_path, text):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match="config.json is not .*restore the folder's config.json"):
        load_decoder(str(tmp_path))


def test_bad_config_in_pipeline_vae_folder(tmp_path):
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="vae/config.json is not valid JSON"):
        load_decoder(str(tmp_path))

