"""The latent cache: written in shards with an atomic index, resumed after a kill, refused where the lab
did not write, read back per (seed, rank, step)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from lab.data.cache import INDEX, LatentCache, encode_cache
from lab.errors import ConfigError

TEACHER = "wan2.1-tiny"


def encode(folder, out, **kw):
    torch.manual_seed(0)  # the tiny test teacher has random weights: the same seed gives the same teacher
    args = dict(frames=5, size=32, per_file=2, shard_windows=4, batch=4)
    return encode_cache(TEACHER, [str(folder)], out=out, **{**args, **kw})


@pytest.fixture(scope="module")
def cache(video_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache") / "c"
    result = encode(video_folder, out)
    return out, result


def test_write_and_read(cache):
    out, result = cache
    assert result["complete"] and result["windows"] == 12 and result["shards"] == 3  # 6 files x 2 windows
    index = json.loads((out / INDEX).read_text())
    assert [s["file"] for s in index["shards"]] == [f"shard-{i:05d}.safetensors" for i in range(3)]
    shard = load_file(str(out / "shard-00000.safetensors"))
    assert shard["frames"].shape == (4, 5, 32, 32, 3) and shard["frames"].dtype == torch.uint8
    assert shard["latents"].shape[0] == 4 and shard["latents"].shape[2:] == (2, 4, 4)  # 5 frames -> 2, /8
    data = LatentCache(out, seed=0)
    real, z = data.sample(3, 5, 32, step=10)
    assert real.shape == (3, 3, 5, 32, 32) and z.shape[0] == 3
    again = LatentCache(out, seed=0).sample(3, 5, 32, step=10)
    assert torch.equal(real, again[0]) and torch.equal(z, again[1])  # per (seed, rank, step): resumable


def test_ranks_read_disjoint_windows(cache):
    out, _ = cache
    ranks = [LatentCache(out, rank=r, world=3).rows for r in range(3)]
    assert sum(len(r) for r in ranks) == 12 and len({x for r in ranks for x in r}) == 12


def test_a_killed_encode_resumes_and_matches(cache, video_folder, tmp_path):
    out, _ = cache
    part = tmp_path / "part"
    first = encode(video_folder, part, stop_after_shards=1)  # killed after its first shard...
    assert not first["complete"] and first["shards"] == 1
    (part / ".shard-00001.tmp").write_bytes(b"half a shard")  # ...while writing the second
    again = encode(video_folder, part)
    assert again["complete"] and again["windows"] == 12 and again["encoded_now"] == 8  # only what was missing
    assert not list(part.glob(".shard-*"))
    for i in range(3):
        a, b = load_file(str(out / f"shard-{i:05d}.safetensors")), load_file(str(part / f"shard-{i:05d}.safetensors"))
        assert torch.equal(a["frames"], b["frames"]) and torch.allclose(a["latents"], b["latents"])
    assert encode(video_folder, part)["encoded_now"] == 0  # a finished cache is left as it is


def test_refuses_folders_it_did_not_write(video_folder, tmp_path, cache):
    out, _ = cache
    with pytest.raises(ConfigError, match="another spec .*size"):
        encode(video_folder, out, size=64)
    (tmp_path / "mine.txt").write_text("someone's notes")
    with pytest.raises(ConfigError, match="not empty"):
        encode(video_folder, tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "someone's notes"


def test_training_must_match_the_cache(cache):
    out, _ = cache
    data = LatentCache(out)
    with pytest.raises(ConfigError, match="teacher 'wan2.1-tiny'"):
        data.check("mini-wan", 5, 32)
    with pytest.raises(ConfigError, match="set frames = 5 and crop = 32"):
        data.check(TEACHER, 9, 32)


def _cli(argv):
    import argparse

    from lab.cli import data as command
    p = argparse.ArgumentParser()
    command.add_arguments(p)
    args = p.parse_args(argv)
    return command.render(command.run(args))


def test_the_encode_command(video_folder, tmp_path):
    with pytest.raises(ConfigError, match="needs --teacher, --out"):
        _cli(["encode", "--data", str(video_folder)])
    torch.manual_seed(0)
    text = _cli(["encode", "--teacher", TEACHER, "--data", f"{video_folder}/v[01].mp4", "--frames", "5", "--size", "32",
                 "--per-file", "1", "--out", str(tmp_path / "c")])
    assert "windows: 2" in text and "complete: True" in text
