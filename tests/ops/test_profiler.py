"""The per-stage profiler on wan2.1-tiny: shares sum to 100%, MACs rank stages the way the
architecture dictates, causal 3D convs carry the MACs, and the CLI / figure builder work."""

import json

import pytest

from lab.cli import main
from lab.ops.figures import profile_figure, profile_rows
from lab.ops.profiler import profile_decoder
from lab.ops.swap import swap_decoder


@pytest.fixture(scope="module")
def wan_profile(tiny_wan):
    return profile_decoder(tiny_wan, latent_frames=3, latent_size=(8, 8), repeats=2)


def _by_stage(result):
    return {s["stage"]: s for s in result["stages"]}


def test_shares_sum_to_one(wan_profile):
    stages = wan_profile["stages"]
    assert [s["stage"] for s in stages] == ["conv_in", "mid", "up0", "up1", "up2", "up3", "head", "outside"]
    assert sum(s["latency_share"] for s in stages) == pytest.approx(1.0, abs=1e-9)
    assert sum(s["mac_share"] for s in stages) == pytest.approx(1.0, abs=1e-9)
    for s in stages[:-1]:
        assert s["seconds"] > 0 and s["macs"] > 0
        assert sum(o["latency_share_in_stage"] for o in s["ops"]) == pytest.approx(1.0, abs=1e-6)
        assert sum(o["mac_share_in_stage"] for o in s["ops"]) == pytest.approx(1.0, abs=1e-6)
    # Every MAC of the decode is attributed to a stage (FlopCounterMode sees nothing outside them here).
    assert sum(s["macs"] for s in stages[:-1]) == wan_profile["total_macs"]


def test_stage_ranking_is_sensible(wan_profile):
    st = _by_stage(wan_profile)
    macs = sorted(st, key=lambda s: -st[s]["mac_share"])
    assert set(macs[:2]) == {"up2", "up3"}  # the high-resolution stages dominate MACs
    high = st["up2"]["latency_share"] + st["up3"]["latency_share"]
    assert high > st["conv_in"]["latency_share"] + st["mid"]["latency_share"] + st["up0"]["latency_share"]
    for name in ("conv_in", "mid", "up0", "up1", "up2", "up3", "head"):
        top = max(st[name]["ops"], key=lambda o: o["macs"])
        assert top["type"] == "causal_conv3d", (name, top)


def test_profile_of_a_swapped_decoder_names_the_ops(tiny_wan):
    swapped, _ = swap_decoder(tiny_wan, "flash-vaed")
    st = _by_stage(profile_decoder(swapped, 2, (4, 4), repeats=1))
    assert "op:dwsep3d" in {o["type"] for o in st["up1"]["ops"]}
    assert "op:conv2d" in {o["type"] for o in st["up3"]["ops"]}
    assert "causal_conv3d" not in {o["type"] for o in st["up3"]["ops"]}


def test_figure_and_rows(wan_profile):
    rows = profile_rows(wan_profile)
    assert sum(r["mac_share"] for r in rows) == pytest.approx(1.0, abs=1e-6)
    fig = profile_figure(wan_profile)
    assert len(fig.data) >= 2 * len({r["type"] for r in rows}) - 2


def test_cli_profile_json(capsys):
    rc = main(["profile", "--decoder", "wan2.1-tiny", "--frames", "5", "--size", "32x32", "--repeats", "1",
               "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["video_shape"] == [1, 3, 5, 32, 32]
    assert {"stage", "latency_share", "mac_share", "ops"} <= set(out["stages"][0])


def test_cli_profile_bad_frames(capsys):
    rc = main(["profile", "--decoder", "wan2.1-tiny", "--frames", "8", "--size", "32x32", "--json"])
    assert rc == 1
    assert "1 + 4k" in json.loads(capsys.readouterr().out)["error"]


def test_profile_of_a_pruned_student(tiny_wan):
    """Students ('wan-student' adapters from lab.prune) keep the teacher's paths: same stage rows."""
    from lab.prune import prune

    student, _ = prune(tiny_wan, "flash-vaed", criterion="random", fold=False, operators="flash-vaed")
    result = profile_decoder(student, 2, (4, 4), repeats=1)
    st = _by_stage(result)
    assert result["decoder_params"] == student.decoder_params()
    assert sum(s["params"] for s in result["stages"]) == student.decoder_params()
    assert "op:conv2d" in {o["type"] for o in st["up2"]["ops"]}
    assert sum(s["mac_share"] for s in result["stages"]) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("config", [
    dict(block_out_channels=(16, 16, 16, 16), num_blocks=(1, 1, 1, 1), temporal_compression=1, latent_channels=4),
    dict(block_out_channels=(32, 32, 32, 32), num_blocks=(1, 1, 1, 1), temporal_compression=4, latent_channels=16,
         upsample_mode="bilinear", temporal_mid_layers=1, temporal_mid_head_dim=16),
])
def test_lightweight_decoders_profile_by_their_own_stage_map(config):
    # TAE-style decoders have no diffusers VAE inside: their stage map comes from the model itself, and
    # every MAC of the decode still lands in a stage.
    from lab.models.lightweight.adapter import LightweightAdapter
    from lab.models.lightweight.tae import TinyVideoDecoder
    dec = LightweightAdapter("tae-test", TinyVideoDecoder(**config))
    result = profile_decoder(dec, latent_frames=2, latent_size=(4, 4), repeats=1)
    names = [s["stage"] for s in result["stages"]]
    assert names[0] == "conv_in" and names[-2:] == ["head", "outside"] and "up3" in names
    # 'mid' holds the frame expansion and the temporal mid block: absent for an image decoder without either
    assert ("mid" in names) == (config["temporal_compression"] > 1)
    assert sum(s["macs"] for s in result["stages"][:-1]) == result["total_macs"]
    assert sum(s["latency_share"] for s in result["stages"]) == pytest.approx(1.0, abs=1e-9)
