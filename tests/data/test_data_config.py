"""The data sections of the distillation and teacher configs: the new keys and the checks on them."""

import tomllib
from pathlib import Path

import pytest

from lab.distill.config import from_dict
from lab.errors import ConfigError, LabError
from lab.teachers.config import TrainConfig

TINY = Path(__file__).resolve().parents[2] / "configs" / "distill" / "tiny.toml"


def tiny(**data):
    cfg = tomllib.loads(TINY.read_text())
    cfg["data"].update(data)
    return cfg


def test_the_shipped_configs_keep_their_in_memory_clips():
    cfg = from_dict(tiny())
    assert cfg.data.clips == ["bbb-128"] and cfg.data.manifest is None and cfg.data.cache is None


def test_a_manifest_or_a_cache_may_replace_the_clips():
    assert from_dict(tiny(clips=[], manifest="train.jsonl")).data.manifest == "train.jsonl"
    cached = tiny(clips=[], cache="caches/v")
    del cached["phases"][2]["frames"]  # a cache holds one window shape: no phase may ask for another
    assert from_dict(cached).data.cache == "caches/v"
    with pytest.raises(ConfigError, match="data.clips is empty"):
        from_dict(tiny(clips=[]))


def test_a_cache_fixes_the_window_shape():
    # tiny.toml's finetune phase reads 9 frames; the cache holds data.frames = 5.
    with pytest.raises(ConfigError, match=r"phases\[2\] \(finetune\).frames"):
        from_dict(tiny(cache="caches/v"))


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_workers_must_be_a_count(bad):
    with pytest.raises(ConfigError, match="data.workers"):
        from_dict(tiny(workers=bad))


def test_teacher_config_takes_a_dataset():
    cfg = TrainConfig.from_flags(model="wan2.1-tiny", frames=5, crop=32, clips=["/videos/**/*.mp4"], manifest="m.csv")
    cfg.validate()
    assert TrainConfig.from_dict(cfg.to_dict()).data.clips == ["/videos/**/*.mp4"]
    with pytest.raises(LabError, match="--workers"):
        TrainConfig.from_flags(model="wan2.1-tiny", frames=5, crop=32, workers=-1).validate()
