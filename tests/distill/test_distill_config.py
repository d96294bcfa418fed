"""Config loading: TOML/YAML/dict, unknown keys and bad values rejected before training starts."""

from pathlib import Path

import pytest

from lab.distill import distill, load_config
from lab.distill.config import DistillConfig, from_dict
from lab.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "distill"


@pytest.mark.parametrize("name", ["tiny.toml", "mini-wan-flash.toml"])
def test_shipped_configs_load(name):
    cfg = load_config(CONFIGS / name)
    assert [p.name for p in cfg.phases] == ["align", "joint", "finetune"]
    # model selection never sees a held-out clip: validation is on a clip neither trained on nor held out
    assert cfg.data.val_clips == [{"tiny.toml": "bigbuckbunny", "mini-wan-flash.toml": "city"}[name]]
    assert "carphone" not in cfg.data.clips


def test_yaml_and_dict_give_the_same_config(tmp_path):
    yaml = pytest.importorskip("yaml")
    data = {"teacher": "wan2.1-tiny", "student": {"keep": 0.5},
            "phases": [{"name": "only", "losses": {"pixel_teacher_l1": 1.0}, "max_steps": 3,
                        "plateau": {"metric": "val/psnr", "mode": "max"}}]}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    a, b = load_config(path), from_dict(data)
    assert a.to_dict() == b.to_dict()
    assert a.phases[0].plateau.mode == "max" and a.optim.lr == 1e-4 and a.optim.betas == [0.9, 0.95]


def test_defaults_are_the_method_defaults():
    cfg = DistillConfig()
    cfg.student.keep = 0.25
    cfg.validate()
    # the default phases take at most 500 steps: the EMA averages over a tenth of them (0.999 is for long runs)
    assert cfg.ema.enabled and cfg.ema.decay == pytest.approx(0.9802, abs=1e-4)
    assert cfg.phases[1].feature_decay and cfg.phases[2].plateau.metric == "val/psnr"


@pytest.mark.parametrize("data, words", [
    ({"student": {"keep": 0.5}, "lerning_rate": 1}, ["unknown key 'lerning_rate' in config", "optim"]),
    ({"student": {"keep": 0.5}, "optim": {"lrate": 1}}, ["unknown key 'lrate' in config.optim", "lr, betas"]),
    ({"student": {"keep": 0.5}, "phases": [{"name": "a", "plateau": {"patiense": 3}}]},
     ["'patiense' in config.phases[0].plateau", "patience"]),
    ({"student": {"keep": 0.5}, "optim": {"lr": -1.0}}, ["optim.lr must be > 0"]),
    ({"student": {"keep": 0.5}, "optim": {"lr": "fast"}}, ["config.optim.lr must be float", "'fast'"]),
    ({"student": {"keep": 0.5}, "phases": [{"losses": {"pixle": 1.0}}]}, ["unknown loss 'pixle'", "pixel_teacher_l1"]),
    ({"student": {"keep": 0.5}, "phases": [{"max_steps": 0}]}, ["max_steps must be a positive integer"]),
    ({"student": {"keep": 0.5}, "data": {"clips": ["bbb-128", "carphone"]}}, ["held out", "carphone"]),
    # validation picks 'best': never on a held-out clip, its twin, or a training clip
    ({"student": {"keep": 0.5}, "data": {"val_clips": ["carphone"]}}, ["data.val_clips", "held-out", "bigbuckbunny"]),
    ({"student": {"keep": 0.5}, "data": {"val_clips": ["carphone_distorted"]}}, ["held-out frames of 'carphone'"]),
    ({"student": {"keep": 0.5}, "data": {"clips": ["bbb-128", "bigbuckbunny[0:50]"]}},
     ["val_clips ['bigbuckbunny'] are also training clips"]),
    ({"student": {"keep": 0.5}, "ema": {"decay": 1.0}}, ["ema.decay must be in (0, 1)", "leave it out"]),
    ({"phases": [{"losses": {"pixel_real_l1": 1.0}}]}, ["student needs either 'folder'"]),
    ({"student": {"keep": 0.5}, "phases": []}, ["phases is empty"]),
    ({"student": {"keep": 0.5}, "phases": [{"losses": {"pixel_real_l1": 1.0}, "feature_decay": True}]},
     ["feature_decay needs a 'feature' loss"]),
    ({"student": {"keep": 0.5}, "grad_checkpointing": True}, ["grad_checkpointing was removed", "data.batch"]),
    ({"student": {"keep": 0.5}, "threads": 100000}, ["threads in the config must be at most", "CPU count"]),
    ({"student": {"keep": 0.5}, "device": "banana"}, ["use cpu, cuda or cuda:N", "banana"]),
    ({"student": {"keep": 0.5}, "first_frame_weight": 0}, ["first_frame_weight must be a number > 0"]),
    ({"student": {"keep": 0.5, "norm_stats": "fixed"}}, ["student.norm_stats must be one of train, frozen"]),
])
def test_bad_configs_name_the_problem(data, words):
    with pytest.raises(ConfigError) as err:
        from_dict(data)
    for w in words:
        assert w in str(err.value)


def test_bad_config_is_rejected_before_the_run_folder_exists(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('teacher = "mini-wan"\n[student]\nkeep = 0.5\n[optim]\nlr = 1e-4\nbeta = [0.9, 0.9]\n')
    with pytest.raises(ConfigError, match="unknown key 'beta' in config.optim"):
        distill(bad, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_unparseable_and_missing_files(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("teacher = \n")
    with pytest.raises(ConfigError, match="does not parse"):
        load_config(broken)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_threads_are_torchs_choice_unless_a_config_pins_them():
    assert from_dict({"student": {"keep": 0.5}}).threads is None  # a GPU run is not pinned to one core
    assert from_dict({"student": {"keep": 0.5}, "threads": 2}).threads == 2


def test_validation_on_a_held_out_file_is_refused_by_path_and_by_content(tmp_path, sample_clips):
    copy = tmp_path / "my_clip.mp4"
    copy.write_bytes(sample_clips["carphone"].read_bytes())  # the held-out clip under another name
    for val in (str(sample_clips["carphone"]), str(copy)):
        with pytest.raises(ConfigError, match="reads held-out frames of 'carphone'"):
            from_dict({"student": {"keep": 0.5}, "data": {"val_clips": [val]}})


def test_short_runs_get_an_ema_that_moves():
    from lab.distill.config import auto_ema_decay, ema_warning

    phases = [{"name": "a", "losses": {"pixel_teacher_l1": 1.0}, "max_steps": 120}]
    auto = from_dict({"student": {"keep": 0.5}, "phases": phases})
    # decay left out: the EMA averages over a tenth of the run, so the initial weights are gone by its end
    assert auto.ema.decay == auto_ema_decay(120) == pytest.approx(0.92, abs=1e-3)
    assert auto.ema.decay ** 120 < 1e-4 and ema_warning(auto) is None
    # an automatic decay follows an edit of the same config (a notebook lengthening the run) ...
    auto.phases[0].max_steps = 1200
    auto.validate()
    assert auto.ema.decay == auto_ema_decay(1200) == pytest.approx(0.9917, abs=1e-4)
    # ... while a recorded one (a resumed run's config.json) stays what the run used
    from dataclasses import asdict
    recorded = from_dict(asdict(auto))
    recorded.phases[0].max_steps = 120
    recorded.validate()
    assert recorded.ema.decay == auto_ema_decay(1200)
    assert auto_ema_decay(100_000) == 0.999
    for steps in (2, 6, 50, 3000):  # however short, the automatic EMA never keeps the initial weights
        assert auto_ema_decay(steps) ** steps < 1e-4
    # an explicit decay is kept, with a warning naming the problem and the fix
    fixed = from_dict({"student": {"keep": 0.5}, "phases": phases, "ema": {"decay": 0.999}})
    assert fixed.ema.decay == 0.999
    note = ema_warning(fixed)
    assert "~1000 steps" in note and "at most 120" in note and "89% of the initial weights" in note
    assert "Leave ema.decay out" in note
    assert ema_warning(from_dict({"student": {"keep": 0.5}, "phases": phases, "ema": {"decay": 0.9}})) is None
    assert ema_warning(from_dict({"student": {"keep": 0.5}, "phases": phases,
                                  "ema": {"enabled": False, "decay": 0.999}})) is None
