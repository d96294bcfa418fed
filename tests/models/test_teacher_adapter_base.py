"""Every teacher adapter over a diffusers-style VAE (lab.models.adapters.VAETeacherAdapter) saves the same
folder (the VAE's diffusers files plus lab_decoder.json with adapter, name and family) and reloads, through
its own ``vae_class``, as the same adapter decoding the same video. Wan 2.1 and LTX-Video are also covered
by test_weights; LTX-2, Wan 2.2 and TAEF2 teachers are only here."""

import json

import pytest
import torch

from lab.families.taef2 import TAEF2DecoderAdapter, TAEF2Model
from lab.models import load_decoder
from lab.models.adapters import VAETeacherAdapter

TEACHERS = [("wan2.1-tiny", {}), ("ltx-video-tiny", {}), ("ltx-2-tiny", {}), ("wan2.2-tiny", {}),
            ("taef2", {"weights": "random"})]


@pytest.mark.parametrize("name,kw", TEACHERS, ids=[n for n, _ in TEACHERS])
def test_teacher_saves_and_reloads_as_itself(name, kw, tmp_path):
    dec = load_decoder(name, **kw)
    assert isinstance(dec, VAETeacherAdapter) and isinstance(dec.vae, type(dec).vae_class)
    folder = dec.save(tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors",
                                                        "lab_decoder.json"]
    assert json.loads((folder / "lab_decoder.json").read_text()) == {
        "adapter": dec.adapter_kind, "name": dec.name, "family": "teacher"}

    again = load_decoder(str(folder))
    assert type(again) is type(dec) and type(again.vae) is type(dec.vae)
    assert (again.name, again.family, again.geometry, again.causal, again.has_encoder) == \
        (dec.name, dec.family, dec.geometry, dec.causal, True)
    g = dec.geometry
    z = torch.randn(1, g.channels, 2, 2, 2)
    assert torch.equal(again.decode(z), dec.decode(z))


def test_family_without_an_entry_in_the_marker_loads_as_teacher(tmp_path):
    folder = load_decoder("taef2", weights="random").save(tmp_path / "m")
    meta = json.loads((folder / "lab_decoder.json").read_text())
    del meta["family"]
    (folder / "lab_decoder.json").write_text(json.dumps(meta))
    assert load_decoder(str(folder)).family == "teacher"


def test_has_encoder_follows_the_vae():
    assert not TAEF2DecoderAdapter("t", TAEF2Model(with_encoder=False)).has_encoder
