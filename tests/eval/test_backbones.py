"""LPIPS, FID and video FID code paths on randomly initialised backbones (the public weights cannot
be downloaded here): a set's distance to itself is ~0 and grows with added noise; missing weights
raise an error that names the file and the folder."""

import pytest
import torch
from torch import nn

from lab.errors import WeightsNotFoundError
from lab.eval import backbones
from lab.eval.backbones import FIDInceptionV3, LPIPSNet, build_videomae
from lab.eval.perceptual import FID, LPIPS, VideoFID


def _video(t=8, h=32, w=32):
    torch.manual_seed(1)
    base = torch.rand(2, 3, 1, h, w) * 2 - 1
    # Smooth motion so frames differ but stay related (random clips per batch element).
    return (base + 0.05 * torch.randn(2, 3, t, h, w).cumsum(2)).clamp(-1, 1)


def _noisy(x, s):
    return (x + s * torch.randn_like(x)).clamp(-1, 1)


def test_lpips_random_init():
    x = _video(t=3)
    net = LPIPSNet().eval()
    d = [LPIPS(net).update(_noisy(x, s) if s else x, x).compute() for s in (0, 0.05, 0.3)]
    assert d[0] == pytest.approx(0.0, abs=1e-7)
    assert 0 < d[1] < d[2]


def test_fid_inception_random_init():
    net = FIDInceptionV3(resize=75).eval()  # 75 px: the smallest input the architecture takes; faster
    for m in net.modules():
        if isinstance(m, nn.Conv2d):  # default init shrinks the signal through 90 layers; keep it alive
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    x = _video(t=6)
    fid = FID(net).update(_noisy(x, 0.5), x)
    assert fid.sx.n == fid.sy.n == 12 and fid.sx.mean.shape == (2048,)
    far = fid.compute()
    fid.sx = fid.sy  # the real set against itself, without a second forward pass
    same = fid.compute()
    assert far > 0 and abs(same) < 1e-3 * far


def _tiny_videomae():
    return build_videomae(dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=2, intermediate_size=64))


def test_video_fid_random_init_and_streaming():
    model = _tiny_videomae()
    assert model.config.num_frames == 8
    x = _video(t=16)
    same = VideoFID(model).update(x, x).compute()
    y = _noisy(x, 0.1)
    d = [VideoFID(model).update(v, x).compute() for v in (y, _noisy(x, 0.5))]
    assert abs(same) < 1e-6 and 0 < d[0] < d[1]
    acc = VideoFID(model)
    for t0, t1 in ((0, 5), (5, 11), (11, 16)):  # chunks that straddle the 8-frame clips
        acc.update(y[:, :, t0:t1], x[:, :, t0:t1])
    assert acc.sx.n == 4 and acc.compute() == pytest.approx(d[0], rel=1e-6)


def test_state_dict_keys_match_public_layouts():
    lp = set(LPIPSNet().state_dict())
    # torchvision vgg16 conv indices and lpips v0.1 linear layer names
    assert {f"net.features.{i}.weight" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)} | \
        {f"lin{i}.model.1.weight" for i in range(5)} <= lp
    inc = FIDInceptionV3().state_dict()
    assert inc["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert inc["Mixed_7c.branch3x3dbl_3b.conv.weight"].shape == (384, 384, 3, 1)
    assert inc["Mixed_6e.branch7x7dbl_5.conv.weight"].shape == (192, 192, 1, 7)
    assert sum(v.numel() for k, v in inc.items() if "num_batches" not in k and "running" not in k) == 21_785_568


def test_missing_weights_name_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_METRIC_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("LAB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match=f"{tmp_path}/vgg16-397923af.pth"):
        backbones.load_lpips()
    with pytest.raises(WeightsNotFoundError, match="pt_inception-2015-12-05-6726825d.pth"):
        backbones.load_inception()
    with pytest.raises(WeightsNotFoundError, match=f"{tmp_path}/videomae-v2"):
        backbones.load_videomae()


def test_weights_load_from_local_files(tmp_path, monkeypatch):
    # Files in the public layouts load (and a weights file round-trips exactly).
    monkeypatch.setenv("LAB_METRIC_WEIGHTS", str(tmp_path))
    src = LPIPSNet()
    torch.save({k.removeprefix("net."): v for k, v in src.state_dict().items() if k.startswith("net.")}
               | {"classifier.0.weight": torch.zeros(1)}, tmp_path / "vgg16-397923af.pth")
    torch.save({k: v for k, v in src.state_dict().items() if k.startswith("lin")}, tmp_path / "lpips_vgg_v0.1.pth")
    loaded = backbones.load_lpips()
    for k, v in src.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    model = _tiny_videomae()
    model.save_pretrained(tmp_path / "videomae-v2")
    again = backbones.load_videomae()
    assert again.config.num_frames == 8 and torch.equal(
        again.embeddings.patch_embeddings.projection.weight, model.embeddings.patch_embeddings.projection.weight)
