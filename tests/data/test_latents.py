"""Latent files (``python -m lab encode --out``): what save_latents writes, load_latents reads back (a plain tensor
or safetensors), written whole through lab.files, with the permissions of an ordinary file."""

import os

import pytest
import torch

from lab.data import latents
from lab.data.latents import load_latents, save_latents


@pytest.mark.parametrize("name", ["z.pth", "z.safetensors"])
def test_saved_latents_load_back_with_ordinary_permissions(tmp_path, name):
    z = torch.randn(1, 16, 3, 4, 4)[:, :, 1:]  # a view: only its own storage is written
    old = os.umask(0o022)
    try:
        path = save_latents(tmp_path / "out" / name, z)
    finally:
        os.umask(old)
    assert torch.equal(load_latents(path), z) and path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == [name]
    if name.endswith(".pth"):  # a plain tensor, as the README says: torch.load(..., weights_only=True)
        assert torch.equal(torch.load(path, weights_only=True), z)


def test_a_save_that_fails_midway_leaves_the_old_latents(tmp_path, monkeypatch):
    path = save_latents(tmp_path / "z.safetensors", torch.zeros(1, 16, 1, 2, 2))

    def cut_short(tensors, filename):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(latents, "save_file", cut_short)
    with pytest.raises(OSError, match="No space"):
        save_latents(path, torch.ones(1, 16, 1, 2, 2))
    assert torch.equal(load_latents(path), torch.zeros(1, 16, 1, 2, 2))
    assert [p.name for p in tmp_path.iterdir()] == ["z.safetensors"]
