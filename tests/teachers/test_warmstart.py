"""Warm start (--init-from) and the pickle-free training state."""

import pytest
import torch

from lab.errors import CheckpointError
from lab.teachers.checkpoint import checkpoint_folder, load_state
from lab.teachers.config import TrainConfig
from teacher_configs import tiny_config
from lab.teachers.train import build_model, train

pytestmark = pytest.mark.filterwarnings("ignore")


def tiny(**kw) -> TrainConfig:
    return tiny_config(**{"steps": 3, **kw})


def test_init_from_a_run_takes_its_weights_but_a_fresh_schedule(tmp_path, bundled_windows):
    train(tiny(), tmp_path / "short", data=bundled_windows, command="python -m lab teacher train --run short")
    earlier = load_state(tmp_path / "short")
    # A new run on longer windows: stop before its first step to see exactly what it starts from.
    cfg = tiny(frames=9, steps=50, init_from=str(tmp_path / "short"))
    train(cfg, tmp_path / "long", data=bundled_windows, stop_at=0)
    start = load_state(tmp_path / "long")
    assert start["step"] == 0 and start["optimizer"]["state"] == {}
    for k, v in earlier["model"].items():
        assert torch.equal(start["model"][k], v), k
    short = {"steps": 3, "train_s": round(earlier["wall_s"], 1), "machine": earlier["meta"]["machine"],
             "started": earlier["meta"]["started"], "command": "python -m lab teacher train --run short"}
    assert start["meta"]["init_from"] == {"source": str(tmp_path / "short"), "step": 3,
                                          "command": "python -m lab teacher train --run short",
                                          "wall_s": earlier["wall_s"], "history": [short]}
    fresh = build_model(cfg).state_dict()
    assert any(not torch.equal(fresh[k], v) for k, v in earlier["model"].items())  # the copy is not the init

    # Resuming the warm-started run continues it; it does not reload the earlier weights.
    result = train(cfg, tmp_path / "long", data=bundled_windows, stop_at=2)
    assert result["step"] == 2 and load_state(tmp_path / "long")["meta"]["init_from"]["step"] == 3


def test_init_from_an_exported_folder(tmp_path, bundled_windows):
    vae = build_model(tiny(seed=5))
    vae.half().save_pretrained(tmp_path / "folder", safe_serialization=True)
    train(tiny(init_from=str(tmp_path / "folder")), tmp_path / "run", data=bundled_windows, stop_at=0)
    got = load_state(tmp_path / "run")["model"]
    for k, v in vae.state_dict().items():
        assert torch.equal(got[k], v.float()), k


def test_init_from_names_the_problem(tmp_path, bundled_windows):
    with pytest.raises(CheckpointError, match="neither a teacher run folder"):
        train(tiny(init_from=str(tmp_path)), tmp_path / "run", data=bundled_windows, stop_at=0)
    train(tiny(model="ltx-video-tiny", frames=9, crop=64, steps=1), tmp_path / "ltx", data=bundled_windows)
    with pytest.raises(CheckpointError, match="same --model"):
        train(tiny(init_from=str(tmp_path / "ltx")), tmp_path / "run2", data=bundled_windows, stop_at=0)


class NotPlain:
    pass


def save_state(run, state: dict):
    """A teacher checkpoint as the training loop writes it (model.* tensors, the rest as the state)."""
    tensors = {f"model.{k}": v for k, v in state["model"].items()}
    rest = {k: v for k, v in state.items() if k != "model"}
    return checkpoint_folder(run).write(state["step"], tensors, rest, {"step": state["step"]})


def test_state_is_loaded_without_unpickling_code(tmp_path):
    plain = {"model": {"w": torch.ones(2)}, "step": 3, "optimizer": {}, "meta": None,
             "config": {"crop": 32, "sides": [1, 2]}}
    with pytest.raises(CheckpointError, match="NotPlain"):
        save_state(tmp_path, {**plain, "config": NotPlain()})
    assert not (tmp_path / "checkpoints" / "step-0000003").exists()
    torch.save({"model": {}, "config": NotPlain()}, tmp_path / "state.pt")  # e.g. an old or foreign file
    with pytest.raises(CheckpointError, match="other than tensors"):
        load_state(tmp_path)
    save_state(tmp_path, plain)
    assert load_state(tmp_path)["config"] == {"crop": 32, "sides": [1, 2]}  # the checkpoint, not the old file
    # A checkpoint whose state would need unpickling is unreadable: a reader skips it, never runs it.
    bad = tmp_path / "checkpoints" / "step-0000009"
    bad.mkdir()
    (bad / "weights.safetensors").write_bytes((tmp_path / "checkpoints" / "step-0000003" / "weights.safetensors")
                                              .read_bytes())
    torch.save({**plain, "step": 9, "config": NotPlain()}, bad / "state.pt")
    assert load_state(tmp_path)["step"] == 3


def test_the_card_names_every_command_that_made_the_run(tmp_path, bundled_windows):
    from lab.teachers.card import _commands, _warm_start
    first = "python -m lab teacher train --steps 10"
    train(tiny(steps=10), tmp_path / "run", data=bundled_windows, stop_at=1, command=first)
    train(tiny(steps=2), tmp_path / "run", data=bundled_windows, command="python -m lab teacher train --steps 2")
    train(tiny(steps=2), tmp_path / "run", data=bundled_windows, command="python -m lab teacher train --steps 2")  # no-op
    meta = load_state(tmp_path / "run")["meta"]
    assert meta["resumed"] == [{"command": "python -m lab teacher train --steps 2", "from_step": 1}]
    info = {"command": meta["command"], "resumed": meta["resumed"], "step": 2}
    assert _commands(info, {"steps": 2}).splitlines() == [f"{first} --stop-at 1",
                                                          "python -m lab teacher train --steps 2"]
    assert _commands({**info, "step": 1, "resumed": None}, {"steps": 10}) == f"{first} --stop-at 1"
    warm = _warm_start({"source": "runs/a", "step": 1000, "command": "python -m lab teacher train --run runs/a"})
    assert "--init-from runs/a" in warm and "(step 1000)" in warm and "python -m lab teacher train --run runs/a" in warm


def test_a_warm_start_from_an_export_carries_its_whole_command_chain(tmp_path):
    from lab.teachers.warmstart import _card_commands
    card = tmp_path / "README.md"
    card.write_text("# x\n\npython -m lab teacher train --not-this-one\n\n## Reproduce\n\nWarm-started from:\n\n```\n"
                    "python -m lab teacher train --run a\n```\nthen:\n\n```\npython -m lab teacher train --run b "
                    "--stop-at 3\npython -m lab teacher train --run b\n```\nthen `python -m lab teacher export ...`\n")
    assert _card_commands(card).splitlines() == ["python -m lab teacher train --run a",
                                                 "python -m lab teacher train --run b --stop-at 3",
                                                 "python -m lab teacher train --run b"]
    assert _card_commands(tmp_path / "absent.md") is None
