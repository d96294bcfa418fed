"""Metric weights are read from local files; the public URL is tried only when the user allowed
downloads (LAB_ALLOW_DOWNLOADS=1 / --allow-downloads) and nothing marks the machine offline."""

import pytest

from lab.errors import WeightsNotFoundError
from lab.eval import backbones


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_METRIC_WEIGHTS", str(tmp_path))
    for k in ("HF_HUB_OFFLINE", "LAB_OFFLINE", "LAB_ALLOW_DOWNLOADS"):
        monkeypatch.delenv(k, raising=False)
    tried = []

    def urlopen(url, timeout=None):
        tried.append(url)
        raise OSError("no network here")
    monkeypatch.setattr(backbones.urllib.request, "urlopen", urlopen)
    return tried


def test_no_download_unless_allowed(no_weights, tmp_path):
    with pytest.raises(WeightsNotFoundError, match=f"{tmp_path}/vgg16-397923af.pth .downloads are off; "
                                                   f"LAB_ALLOW_DOWNLOADS=1"):
        backbones.load_lpips()
    assert no_weights == []


def test_allowed_download_is_tried_once_and_cleaned_up(no_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_ALLOW_DOWNLOADS", "1")
    with pytest.raises(WeightsNotFoundError, match="download failed: no network here"):
        backbones.load_lpips()
    assert no_weights == [backbones.WEIGHT_FILES["vgg16-397923af.pth"]]
    assert list(tmp_path.iterdir()) == []  # no .part file left


def test_offline_wins_over_allowed(no_weights, monkeypatch):
    monkeypatch.setenv("LAB_ALLOW_DOWNLOADS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="offline mode"):
        backbones.load_inception()
    assert no_weights == []


def test_cli_flag_allows_downloads(monkeypatch):
    import argparse

    from lab.cli.common import add_downloads_arg, apply_downloads_arg
    monkeypatch.delenv("LAB_ALLOW_DOWNLOADS", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("LAB_OFFLINE", raising=False)
    p = argparse.ArgumentParser()
    add_downloads_arg(p)
    apply_downloads_arg(p.parse_args([]))
    assert not backbones.downloads_allowed()
    apply_downloads_arg(p.parse_args(["--allow-downloads"]))
    assert backbones.downloads_allowed()
