"""Teacher runs written by earlier versions of the lab still resume, bit for bit: a run from before run stores
(one state.pt, a flat config) and a run from before the shared training loop (step folders whose state keeps its
generators as ``rng`` and a flat config). Both are made here from a run of today, converted to the old layout."""

import shutil

import pytest
import torch

from lab.runs.store import RunReader
from lab.teachers.checkpoint import load_state
from lab.teachers.config import TrainConfig
from teacher_configs import tiny_config
from lab.teachers.train import train

# The flat config of the earlier versions: these keys came later.
NEW_KEYS = ("checkpoint_every", "keep_checkpoints", "betas")


def tiny(**kw) -> TrainConfig:
    return tiny_config(**kw)


@pytest.fixture(scope="module")
def straight(bundled_windows, tmp_path_factory):
    """The losses of an uninterrupted run."""
    return train(tiny(), tmp_path_factory.mktemp("straight") / "run", data=bundled_windows)["losses"]


def _old_state(state: dict) -> dict:
    """A checkpoint state of today in the layout the earlier versions wrote."""
    flat = {k: v for k, v in TrainConfig.from_dict(state["config"]).flat().items() if k not in NEW_KEYS}
    rest = {k: v for k, v in state.items() if k not in ("torch_rng", "cuda_rng", "data_rng", "config")}
    return {**rest, "config": flat, "rng": {"torch": state["torch_rng"], **state["data_rng"][0]}}


def test_a_run_from_before_run_stores_resumes_from_its_state_pt(tmp_path, bundled_windows, straight):
    run = tmp_path / "run"
    train(tiny(), run, data=bundled_windows, stop_at=3)
    torch.save(_old_state(load_state(run)), run / "state.pt")
    for name in ("checkpoints", "samples"):
        shutil.rmtree(run / name, ignore_errors=True)
    for p in run.glob("store.sqlite*"):
        p.unlink()
    result = train(tiny(), run, data=bundled_windows)
    assert result["step"] == 5 and result["losses"] == straight[3:]
    with RunReader(run) as r:
        assert r.kind() == "teacher" and r.status() == "finished"
        assert r.phases()[0].reason == "resumed a run made before teacher runs had a store"
    assert load_state(run)["step"] == 5 and (run / "checkpoints" / "step-0000005").is_dir()


def test_a_run_from_before_the_shared_loop_resumes_from_its_checkpoint(tmp_path, bundled_windows, straight):
    run = tmp_path / "run"
    train(tiny(), run, data=bundled_windows, stop_at=3)
    state_file = run / "checkpoints" / "step-0000003" / "state.pt"
    torch.save(_old_state(torch.load(state_file, weights_only=True)), state_file)
    result = train(tiny(), run, data=bundled_windows)
    assert result["step"] == 5 and result["losses"] == straight[3:]
    assert TrainConfig.from_dict(load_state(run)["config"]) == tiny()  # written the new way from then on
